"""The self-contained HTML report of one session (`GET /sessions/{id}/report.html`, CLI).

One page, no external asset and no script: styles are inline, the per-turn chart is inline
SVG, and a Content-Security-Policy forbids every request, so the page opens offline, can be
mailed as a file and prints to PDF from the browser. Candidate text is untrusted: the
template autoescapes everything. Labels follow the interview's language (Korean or English).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from api.interviews import SessionReport

#: Chart geometry (SVG user units); the chart scales with the page width.
CHART_WIDTH = 640
CHART_HEIGHT = 200
CHART_MARGIN = 36

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Interview report",
        "participant": "Participant",
        "position": "Position",
        "language": "Language",
        "status": "Status",
        "started": "Started",
        "ended": "Ended",
        "open": "not closed yet",
        "mean": "Mean turn score",
        "holistic": "Whole conversation",
        "chart": "Score per turn",
        "turn": "Turn",
        "turns": "Answers, turn by turn",
        "question": "Question",
        "answer": "Answer",
        "no_answer": "(no answer)",
        "not_evaluated": "Not evaluated yet.",
        "criteria": "Criteria",
        "flags": "Flags",
        "strengths": "Strengths",
        "improvements": "To improve",
        "feedback": "Feedback",
        "judge": "Judge",
        "score": "Score",
        "no_turns": "No turn was answered.",
        "emotion": "Emotion (from the platform's analysis; never used in scoring)",
        "emotion_turn": "Emotion",
        "dominant": "Dominant",
        "turns_with_data": "{n} turn(s) with data",
        "intent": "Intent",
    },
    "ko": {
        "title": "면접 평가 보고서",
        "participant": "지원자",
        "position": "직무",
        "language": "언어",
        "status": "상태",
        "started": "시작",
        "ended": "종료",
        "open": "아직 종료되지 않음",
        "mean": "턴 평균 점수",
        "holistic": "대화 전체 평가",
        "chart": "턴별 점수",
        "turn": "턴",
        "turns": "턴별 답변",
        "question": "질문",
        "answer": "답변",
        "no_answer": "(답변 없음)",
        "not_evaluated": "아직 평가되지 않았습니다.",
        "criteria": "평가 기준",
        "flags": "플래그",
        "strengths": "강점",
        "improvements": "개선할 점",
        "feedback": "피드백",
        "judge": "평가자",
        "score": "점수",
        "no_turns": "답변된 턴이 없습니다.",
        "emotion": "감정 분석 (플랫폼 분석 결과이며 점수에는 반영되지 않음)",
        "emotion_turn": "감정",
        "dominant": "주요 감정",
        "turns_with_data": "데이터가 있는 턴 {n}개",
        "intent": "의도",
    },
}


#: How each session status (`SessionReport.status`) reads on the page.
STATUS_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "open": "in progress",
        "completed": "completed",
        "abandoned": "abandoned (stopped before any answer)",
        "queued": "queued for evaluation",
        "evaluating": "being evaluated",
        "failed": "evaluation failed",
    },
    "ko": {
        "open": "진행 중",
        "completed": "평가 완료",
        "abandoned": "중단됨 (답변 전에 종료)",
        "queued": "평가 대기 중",
        "evaluating": "평가 중",
        "failed": "평가 실패",
    },
}


@dataclasses.dataclass(frozen=True)
class ChartPoint:
    """One turn's score placed on the chart."""

    turn: int
    score: float
    x: float
    y: float


@dataclasses.dataclass(frozen=True)
class Chart:
    """The per-turn score chart: points, gridlines and the polyline through them."""

    width: int
    height: int
    margin: int
    points: list[ChartPoint]
    gridlines: list[tuple[int, float]]
    polyline: str


def score_chart(scores: list[tuple[int, float]]) -> Chart:
    """Place (turn, score) pairs on a 0-100 chart with one integer tick per turn."""
    plot_w = CHART_WIDTH - 2 * CHART_MARGIN
    plot_h = CHART_HEIGHT - 2 * CHART_MARGIN
    count = len(scores)
    step = plot_w / max(count - 1, 1)

    def y_of(score: float) -> float:
        return round(CHART_MARGIN + plot_h * (1 - score / 100), 1)

    points = [
        ChartPoint(
            turn=turn,
            score=score,
            x=round(CHART_MARGIN + (index * step if count > 1 else plot_w / 2), 1),
            y=y_of(score),
        )
        for index, (turn, score) in enumerate(scores)
    ]
    return Chart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        margin=CHART_MARGIN,
        points=points,
        gridlines=[(value, y_of(value)) for value in (0, 25, 50, 75, 100)],
        polyline=" ".join(f"{p.x},{p.y}" for p in points),
    )


@lru_cache(maxsize=1)
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("api", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _criteria(evaluation: dict[str, Any] | None) -> list[tuple[str, float, str]]:
    """(name, score, reason) per rubric entry, in a fixed (alphabetical) order."""
    rubrics = (evaluation or {}).get("rubrics") or {}
    return [
        (name, float(entry.get("score", 0)), str(entry.get("reason", "")))
        for name, entry in sorted(rubrics.items())
        if isinstance(entry, dict)
    ]


def _status_line(report: SessionReport, statuses: dict[str, str]) -> str:
    """The status label; a failed job adds its attempts and error."""
    label = statuses.get(report.status, report.status)
    if report.status == "failed" and report.error:
        label = f"{label}, {report.attempts} attempt(s): {report.error}"
    return label


def emotion_rows(summary: dict[str, Any] | None) -> list[tuple[str, float]]:
    """(emotion, score) of a summary, highest first (ties by name)."""
    scores = (summary or {}).get("emotion_scores") or {}
    return sorted(((str(k), float(v)) for k, v in scores.items()), key=lambda kv: (-kv[1], kv[0]))


def render_report_html(report: SessionReport) -> str:
    """The report page for `report`, in the interview's language."""
    labels = LABELS.get(report.language, LABELS["en"])
    statuses = STATUS_LABELS.get(report.language, STATUS_LABELS["en"])
    turns = [
        {
            "turn": turn.turn,
            "question": turn.question,
            "answer": turn.answer,
            "evaluation": turn.evaluation,
            "criteria": _criteria(turn.evaluation),
            "emotion": turn.emotion,
            "emotion_rows": emotion_rows(turn.emotion)[:3],
        }
        for turn in report.turns
    ]
    scored = [
        (turn.turn, float(turn.evaluation["score"]))
        for turn in report.turns
        if turn.evaluation is not None
    ]
    template = _environment().get_template("report.html.j2")
    return template.render(
        report=report,
        labels=labels,
        status=_status_line(report, statuses),
        turns=turns,
        chart=score_chart(scored) if scored else None,
        holistic_criteria=_criteria(report.holistic),
        emotion_rows=emotion_rows(report.emotion),
    )
