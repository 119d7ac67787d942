"""A session's report for the terminal (`turnjudge report`), drawn with rich.

A table of turns (score, criteria, flags), then each turn's analysis, then the holistic
evaluation with its criteria: what an interviewer reads first, in that order.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from api.interviews import SessionReport


def _criteria(details: dict[str, Any] | None) -> str:
    rubrics = (details or {}).get("rubrics") or {}
    return ", ".join(
        f"{name} {float(entry['score']):.0f}"
        for name, entry in sorted(rubrics.items())
        if isinstance(entry, dict) and "score" in entry
    )


def _score(details: dict[str, Any] | None) -> str:
    return "-" if details is None else f"{float(details['score']):.1f}"


def _emotions(summary: dict[str, Any]) -> str:
    """`confidence 0.72, nervousness 0.20`: the scores, highest first."""
    scores = summary.get("emotion_scores") or {}
    ranked = sorted(scores.items(), key=lambda kv: (-float(kv[1]), kv[0]))
    return ", ".join(f"{name} {float(score):.2f}" for name, score in ranked)


def report_renderable(report: SessionReport) -> Group:
    """Everything `turnjudge report` prints, as one rich renderable."""
    header = Text.assemble(
        (f"session {report.session_id}\n", "bold"),
        f"participant {report.participant_id} · {report.position} · {report.language} · ",
        (f"{report.status} · ", "bold"),
        f"started {report.started_at[:19]} · ",
        (f"ended {report.ended_at[:19]}" if report.ended_at else "not closed yet"),
    )
    if report.status == "failed" and report.error:
        header.append(f"\nfailed after {report.attempts} attempt(s): {report.error}", "red")
    turns = Table(title="Turns", show_lines=False, expand=True)
    turns.add_column("turn", justify="right", no_wrap=True)
    turns.add_column("question", ratio=3)
    turns.add_column("score", justify="right", no_wrap=True)
    turns.add_column("criteria", ratio=2)
    turns.add_column("flags", ratio=1)
    turns.add_column("emotion", min_width=11)
    for turn in report.turns:
        details = turn.evaluation
        turns.add_row(
            str(turn.turn),
            turn.question,
            _score(details),
            _criteria(details),
            ", ".join((details or {}).get("flags") or []),
            turn.emotion["dominant_emotion"] if turn.emotion else "",
        )
    parts: list[Any] = [header, turns]
    for turn in report.turns:
        if turn.evaluation is not None:
            parts.append(
                Panel(
                    Text(str(turn.evaluation.get("analysis", ""))),
                    title=f"turn {turn.turn} · {_score(turn.evaluation)}",
                    title_align="left",
                )
            )
    if report.holistic is not None:
        parts.append(
            Panel(
                Text(f"{report.holistic.get('analysis', '')}\n\n{_criteria(report.holistic)}"),
                title=f"whole conversation (HOLISTIC_FLOW) · {_score(report.holistic)}",
                title_align="left",
            )
        )
    if report.emotion is not None:
        parts.append(
            Panel(
                Text(_emotions(report.emotion)),
                title_align="left",
                title=f"emotion (never scored) · {report.emotion['dominant_emotion']}"
                f" · {report.emotion.get('turns_with_data', 0)} turn(s)",
            )
        )
    mean = "-" if report.turn_score_mean is None else f"{report.turn_score_mean:.1f}"
    parts.append(Text(f"mean turn score {mean} · flags: {', '.join(report.flags) or 'none'}"))
    return Group(*parts)


def print_report(report: SessionReport, console: Console | None = None) -> None:
    """Print the report to the terminal (or to `console`)."""
    (console or Console()).print(report_renderable(report))
