"""The flow scorer: HOLISTIC_FLOW from the per-turn results, measuring *answering*.

Criteria (the same names as the LLM judge's flow criteria where they mean the same):

- ``consistency``: how well each answer answers its own question (relevance and coverage of
  its expected points; guarded turns count 0), its mean and spread - a conversation of
  non-answers or of answers rotated onto the wrong questions is inconsistent with the
  interview however uniform the answers are;
- ``depth_progression``: per turn, specificity weighted by answering, its level and trend;
- ``coverage``: the position's rubric concepts reached over the answered turns, plus the
  variety of question categories when known;
- ``answer_quality``: the mean per-turn score (exactly the TURN_EVAL scores).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from nodes.judges.details import EvaluationDetails, JudgeInfo, RubricScore
from nodes.judges.heuristic import wording
from nodes.judges.heuristic.calibration import calibration, clamp, r1
from nodes.judges.heuristic.features import find_phrases
from nodes.judges.heuristic.turn import answering
from nodes.judges.judge import FlowCase, TurnCase

if TYPE_CHECKING:
    from nodes.judges.heuristic.judge import TurnResult


def _slope(values: Sequence[float]) -> float:
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n - 1) / 2
    mean_y = math.fsum(values) / n
    num = math.fsum((i - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = math.fsum((i - mean_x) ** 2 for i in range(n))
    return num / den


def _answering(result: TurnResult) -> float:
    return answering(result.scored) if result.answered else 0.0


def flow_details(
    case: FlowCase, turns: Sequence[TurnCase], results: Sequence[TurnResult], info: JudgeInfo
) -> EvaluationDetails:
    """HOLISTIC_FLOW details of a conversation from its per-turn results."""
    from nodes.judges.heuristic.judge import rubric_for

    lang = results[0].inspection.language if results else "en"
    cal = calibration()
    flags = list(
        dict.fromkeys(
            f"{flag.split(':', 2)[0]}:{flag.split(':', 2)[1]}@turn{t.turn}"
            for t, r in zip(turns, results, strict=True)
            for flag in r.details.flags
        )
    )
    if not any(r.scored is not None for r in results):
        reason = wording.text(lang, "flow.no_answers")
        return EvaluationDetails(
            score=0.0,
            analysis=reason,
            rubrics={k: RubricScore(score=0.0, reason=reason) for k in cal.flow_weights},
            feedback=reason,
            improvements=[wording.text(lang, "flow.improvements.answer_quality")],
            flags=flags,
            judge=info,
        )
    answers = [_answering(r) for r in results]
    listed = ", ".join(f"{t.turn}: {a:.0f}" for t, a in zip(turns, answers, strict=True))
    mean = math.fsum(answers) / len(answers)
    spread = math.sqrt(math.fsum((a - mean) ** 2 for a in answers) / len(answers))
    consistency = clamp(mean - 0.5 * spread)
    consistency_reason = wording.text(
        lang, "flow.reason_consistency", listed=listed, mean=f"{mean:.0f}", spread=f"{spread:.0f}"
    )
    depth_values = [
        (r.scored.specificity * a / 100.0) if r.scored is not None and r.answered else 0.0
        for r, a in zip(results, answers, strict=True)
    ]
    slope = _slope(depth_values)
    depth_mean = math.fsum(depth_values) / len(depth_values)
    trend = max(-cal.depth_trend_max, min(cal.depth_trend_max, slope * (len(depth_values) - 1) / 4))
    depth = clamp(depth_mean + trend)
    direction = (
        wording.text(lang, "flow.single")
        if len(depth_values) < 2
        else wording.text(lang, "flow.rising")
        if slope > 2
        else wording.text(lang, "flow.falling")
        if slope < -2
        else wording.text(lang, "flow.steady")
    )
    depth_reason = wording.text(
        lang,
        "flow.reason_depth",
        listed=", ".join(f"{t.turn}: {d:.0f}" for t, d in zip(turns, depth_values, strict=True)),
        direction=direction,
    )
    rubric, note = rubric_for(case.position)
    answered_text = " ".join(r.inspection.scan.cleaned for r in results if r.answered).lower()
    if rubric is None:
        coverage, coverage_reason = 50.0, f"neutral 50: {note}"
    else:
        hit = [
            c
            for c, words in rubric.concepts.items()
            if find_phrases(answered_text, words) or any(w.lower() in answered_text for w in words)
        ]
        target = max(1, math.ceil(cal.flow_concept_target * len(rubric.concepts)))
        coverage = 100.0 * min(len(hit), target) / target
        coverage_reason = (
            f"{len(hit)} of the {len(rubric.concepts)} {rubric.title} concepts "
            f"reached in answered turns ({', '.join(hit[:8]) or 'none'}; "
            f"{target} = full marks)"
        )
        categories = [t.category for t in turns if t.category]
        if categories:
            distinct = list(dict.fromkeys(categories))
            coverage = 0.75 * coverage + 0.25 * 100.0 * len(distinct) / len(categories)
            coverage_reason += f"; {len(distinct)} distinct categories over {len(categories)} turns"
        answered_share = sum(1 for r in results if r.answered) / len(results)
        coverage *= answered_share
    scores = [r.details.score for r in results]
    quality = math.fsum(scores) / len(scores)
    quality_reason = wording.text(
        lang,
        "flow.reason_quality",
        listed=", ".join(f"{t.turn}: {s:.0f}" for t, s in zip(turns, scores, strict=True)),
    )
    parts = {
        "consistency": (consistency, consistency_reason),
        "depth_progression": (depth, depth_reason),
        "coverage": (coverage, coverage_reason),
        "answer_quality": (quality, quality_reason),
    }
    score = r1(clamp(math.fsum(cal.flow_weights[k] * v[0] for k, v in parts.items())))
    # A conversation cannot be better than its answers: the flow is capped a little above
    # the mean turn score (a strong flow adds consistency and breadth, not substance).
    score = r1(min(score, quality + 15.0))
    strengths = [wording.text(lang, f"flow.strengths.{k}") for k, v in parts.items() if v[0] >= 70]
    improvements = [
        wording.text(lang, f"flow.improvements.{k}") for k, v in parts.items() if v[0] < 45
    ]
    flagged_turns = sorted({f.rsplit("@turn", 1)[1] for f in flags}, key=int)
    if flagged_turns and any(f.startswith("prompt_injection") for f in flags):
        improvements.append(
            wording.text(lang, "flow.improvements.flags", turns=", ".join(flagged_turns))
        )
    unanswered = sum(1 for r in results if not r.answered)
    analysis = wording.text(
        lang,
        "flow.analysis",
        turns=len(turns),
        band=wording.band_name(lang, score),
        score=f"{score:.0f}",
        consistency=f"{consistency:.0f}",
        depth=f"{depth:.0f}",
        coverage=f"{coverage:.0f}",
        quality=f"{quality:.0f}",
    )
    if unanswered:
        analysis += wording.text(lang, "flow.unanswered", count=unanswered)
    if flags:
        analysis += wording.text(lang, "flow.flags", flags=", ".join(flags))
    lead = improvements[0] if improvements else (strengths[0] if strengths else "")
    feedback = wording.text(
        lang,
        "feedback",
        band_cap=wording.sentence(wording.band_name(lang, score)),
        score=f"{score:.0f}",
        lead=wording.sentence(lead),
    )
    keywords = list(dict.fromkeys(k for r in results for k in r.details.keywords))[:10]
    return EvaluationDetails(
        score=score,
        analysis=analysis,
        rubrics={k: RubricScore(score=r1(v[0]), reason=v[1]) for k, v in parts.items()},
        feedback=feedback,
        strengths=strengths,
        improvements=improvements,
        keywords=keywords,
        flags=flags,
        judge=info,
    )
