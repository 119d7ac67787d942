"""`turnjudge demo`: a whole offline interview end to end with a scripted sample candidate.

The candidate holds a handful of prepared answers and, for each question the graph asks,
gives the prepared answer closest in meaning (embedding similarity) that it has not used yet:
the interview stays adaptive and the answers stay on topic.
"""

from __future__ import annotations

import json
import textwrap
from importlib import resources
from typing import Any

from api.interviews import InterviewService, SessionReport
from storage.embeddings import Embedder, aembed_queries


def load_candidate() -> dict[str, Any]:
    """The packaged sample candidate."""
    raw = resources.files("api").joinpath("data", "demo_candidate.json").read_text("utf-8")
    candidate: dict[str, Any] = json.loads(raw)
    return candidate


async def _pick_answer(embedder: Embedder, question: str, answers: list[str]) -> str:
    vectors = await aembed_queries(embedder, [question, *answers])
    scores = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    return answers[max(range(len(answers)), key=scores.__getitem__)]


def _wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(text, width=96, initial_indent=indent, subsequent_indent=indent)


async def run_demo(interviews: InterviewService, embedder: Embedder) -> SessionReport:
    """Run the interview, printing each question, answer and score; return the report."""
    candidate = load_candidate()
    unused: list[str] = list(candidate["answers"])
    step = await interviews.start(
        participant_id=candidate["participant_id"], position=candidate["position"],
        language=candidate["language"], max_turns=candidate["max_turns"],
    )
    print(f"session {step.session_id} ({candidate['position']}, {candidate['language']})\n")
    while step.question is not None:
        q = step.question
        print(f"Q{q.turn}/{q.max_turns} [{q.category or '-'}] {q.question}")
        answer = await _pick_answer(embedder, q.question, unused)
        unused.remove(answer)
        print(_wrap(f"A: {answer}"))
        step = await interviews.answer(step.session_id, answer)
        if step.last_evaluation is not None:
            e = step.last_evaluation
            print(f"    -> TURN_EVAL {e['score']:.1f}/100  {e['analysis'][:150]}\n")
    report = await interviews.report(step.session_id)
    print_report(report)
    return report


def print_report(report: SessionReport) -> None:
    """The final report: per-turn scores with rubric breakdown, then the holistic flow."""
    print("=" * 100)
    print(f"Final report — session {report.session_id}, ended at {report.ended_at}")
    for turn in report.turns:
        details = turn.evaluation or {}
        rubrics = ", ".join(
            f"{name} {entry['score']:.0f}" for name, entry in details.get("rubrics", {}).items()
        )
        print(f"  turn {turn.turn}: {details.get('score', float('nan')):5.1f}  ({rubrics})")
    if report.holistic:
        h = report.holistic
        rubrics = ", ".join(f"{n} {e['score']:.0f}" for n, e in h.get("rubrics", {}).items())
        print(f"  HOLISTIC_FLOW: {h['score']:.1f}  ({rubrics})")
        print(_wrap(h["analysis"]))
    print(f"  mean turn score: {report.turn_score_mean}   flags: {report.flags or 'none'}")
    judge = (report.holistic or {}).get("judge", {})
    print(f"  judge: {judge.get('kind')} ({judge.get('model')})")
