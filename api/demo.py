"""`turnjudge demo`: a whole offline interview end to end with a scripted sample candidate.

There is one candidate per language (`api/data/demo_candidate_<language>.json`): English for
the backend position (the default demo), Korean for every position. A candidate holds one
prepared answer per bank question of the position, keyed by the question's text: whatever
question the graph asks, the candidate answers that question. A question that is not in the
bank (an LLM-written one) gets the answer of the most similar prepared question. The report
prints the whole analysis of every evaluation (written in the interview's language), the
rubric entries in a fixed order and each figure once.
"""

from __future__ import annotations

import json
import textwrap
from importlib import resources
from typing import Any

from api.interviews import InterviewService, SessionReport
from api.validation import LANGUAGES, InvalidRequestError
from storage.embeddings import Embedder, aembed_queries


def load_candidate(language: str) -> dict[str, Any]:
    """The packaged sample candidate speaking `language` (`InvalidRequestError` if none)."""
    if language not in LANGUAGES:
        raise InvalidRequestError("language", f"must be one of {', '.join(LANGUAGES)}")
    name = f"demo_candidate_{language}.json"
    raw = resources.files("api").joinpath("data", name).read_text("utf-8")
    candidate: dict[str, Any] = json.loads(raw)
    return candidate


def prepared_answers(candidate: dict[str, Any], position: str) -> list[dict[str, str]]:
    """The candidate's prepared {question, answer} pairs for `position`."""
    answers: dict[str, list[dict[str, str]]] = candidate["answers"]
    if position not in answers:
        raise InvalidRequestError(
            "position",
            f"has no scripted {candidate['language']} demo candidate; "
            f"choose one of {', '.join(answers)}",
        )
    return answers[position]


TURN_ORDER = ("relevance", "coverage", "specificity", "communication")
FLOW_ORDER = ("consistency", "depth_progression", "coverage", "answer_quality")


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


async def _pick_answer(
    embedder: Embedder, question: str, prepared: dict[str, tuple[str, str]]
) -> str:
    """The prepared answer to `question` (by text; else to the most similar question)."""
    if _norm(question) in prepared:
        return prepared[_norm(question)][1]
    texts = [q for q, _ in prepared.values()]
    vectors = await aembed_queries(embedder, [question, *texts])
    scores = [sum(a * b for a, b in zip(vectors[0], v, strict=True)) for v in vectors[1:]]
    return list(prepared.values())[max(range(len(texts)), key=scores.__getitem__)][1]


def _wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(text, width=96, initial_indent=indent, subsequent_indent=indent)


async def run_demo(
    interviews: InterviewService,
    embedder: Embedder,
    *,
    position: str = "backend",
    language: str = "en",
) -> SessionReport:
    """Run the interview, printing each question, answer and score; return the report."""
    candidate = load_candidate(language)
    prepared = {
        _norm(item["question"]): (item["question"], item["answer"])
        for item in prepared_answers(candidate, position)
    }
    step = await interviews.start(
        participant_id=candidate["participant_id"],
        position=position,
        language=language,
        max_turns=candidate["max_turns"],
    )
    print(f"session {step.session_id} ({position}, {language})\n")
    while step.question is not None:
        q = step.question
        print(f"Q{q.turn}/{q.max_turns} [{q.category or '-'}] {q.question}")
        answer = await _pick_answer(embedder, q.question, prepared)
        print(_wrap(f"A: {answer}"))
        step = await interviews.answer(step.session_id, answer)
        if step.last_evaluation is not None:
            print(f"    -> TURN_EVAL {step.last_evaluation['score']:.1f}/100\n")
    report = await interviews.report(step.session_id)
    print_report(report)
    return report


def _rubric_lines(rubrics: dict[str, Any], order: tuple[str, ...]) -> list[str]:
    """One line per rubric entry, in `order` first (then any other), score and reason."""
    names = [n for n in order if n in rubrics] + [n for n in rubrics if n not in order]
    return [
        f"{name:<18} {rubrics[name]['score']:5.1f}  {rubrics[name]['reason']}" for name in names
    ]


def _print_details(title: str, details: dict[str, Any], order: tuple[str, ...]) -> None:
    print(f"  {title}: {details.get('score', float('nan')):.1f}/100")
    print(_wrap(details.get("analysis", "")))
    for line in _rubric_lines(details.get("rubrics", {}), order):
        print(_wrap(line, indent="      "))
    for label in ("strengths", "improvements", "flags"):
        for item in details.get(label, []):
            print(_wrap(f"{label[:-1] if label != 'flags' else 'flag'}: {item}", "      "))


def print_report(report: SessionReport) -> None:
    """The final report: every turn's full evaluation, then the holistic flow."""
    print("=" * 100)
    print(f"Final report - session {report.session_id}, ended at {report.ended_at}")
    for turn in report.turns:
        _print_details(f"turn {turn.turn}", turn.evaluation or {}, TURN_ORDER)
    if report.holistic:
        _print_details("HOLISTIC_FLOW", report.holistic, FLOW_ORDER)
    print(f"  mean turn score: {report.turn_score_mean}")
    judge = (report.holistic or {}).get("judge", {})
    print(f"  judge: {judge.get('kind')} ({judge.get('model')})")
