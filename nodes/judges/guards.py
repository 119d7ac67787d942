"""Guards that run before any judging, shared by both judges.

Each guard recognises an answer that must not earn credit however it reads:

- ``empty``: nothing was written (or only text addressed to the evaluator);
- ``non_answer``: "I don't know", "모르겠습니다", "pass", filler - almost no content of
  the answer's own beyond the question's words;
- ``echo``: the answer restates the question; restated sentences are discounted before any
  relevance or coverage is credited, and when nothing else is left the answer is guarded;
- ``term_list``: technical terms listed without sentences (keyword stuffing);
- ``off_topic``: the answer fits another bank question far better than its own (decided by
  the heuristic judge, which holds the embeddings; see `off_topic_finding`).

A finding records its reason in `details.flags` (``guard:<kind>: <reason>``) and caps the
score (`lexicons/guards.json`, "caps"). A *clear* finding decides the evaluation: the LLM
judge is not called for it (cheaper, and immune to null-answer attacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from nodes.judges.heuristic.features import (
    find_phrases,
    sentences,
    shape,
    units_with_terms,
    word_equivalents,
)
from nodes.judges.lexicons import load

FLAG_PREFIX = "guard:"
CLEAR_KINDS = frozenset({"empty", "injection_only", "non_answer", "echo", "term_list", "off_topic"})


@dataclass(frozen=True)
class GuardFinding:
    """One guard that fired, with its score cap and a reason in English (for the flags)."""

    kind: str
    cap: float
    reason: str
    detail: dict[str, str]

    @property
    def flag(self) -> str:
        """The `details.flags` entry."""
        return f"{FLAG_PREFIX}{self.kind}: {self.reason}"


@dataclass(frozen=True)
class EchoSplit:
    """The answer's sentences split into restatements of the question and the rest."""

    echoed: tuple[str, ...]
    own: tuple[str, ...]

    @property
    def own_text(self) -> str:
        """The answer without its restated sentences (what relevance and coverage read)."""
        return " ".join(self.own)


@cache
def _config() -> dict[str, dict[str, float]]:
    data = load("guards")
    return {"thresholds": data["thresholds"], "caps": data["caps"]}


def cap(kind: str) -> float:
    """The score cap of a guard kind."""
    return float(_config()["caps"][kind])


def threshold(name: str) -> float:
    """A guard threshold from `lexicons/guards.json`."""
    value = _config()["thresholds"][name]
    return float(value)


def split_echo(question: str, answer: str) -> EchoSplit:
    """Split `answer` into sentences that restate `question` and its own sentences.

    A sentence restates the question when at least `echo_sentence_overlap` of its content
    units (English word prefixes, Korean stems, term-map concepts) are the question's.
    """
    q_units = units_with_terms(question)
    limit = threshold("echo_sentence_overlap")
    echoed: list[str] = []
    own: list[str] = []
    for sentence in sentences(answer):
        units = units_with_terms(sentence)
        if units and len(units & q_units) / len(units) >= limit:
            echoed.append(sentence)
        else:
            own.append(sentence)
    return EchoSplit(tuple(echoed), tuple(own))


def novel_units(question: str, text: str) -> set[str]:
    """Content units of `text` that are not the question's (what the answer adds)."""
    return units_with_terms(text) - units_with_terms(question)


@cache
def _non_answer_phrases() -> tuple[str, ...]:
    phrases = load("guards")["non_answer_phrases"]
    return tuple(p.lower() for lang in ("en", "ko") for p in phrases[lang])


def lexical_findings(question: str, answer: str) -> tuple[list[GuardFinding], EchoSplit]:
    """Guards decided from the text alone (non-answer, echo, term list).

    Args:
        question: The question asked.
        answer: The answer with injected text already removed.

    Returns:
        The findings (empty when the answer is a genuine attempt) and the echo split.
    """
    findings: list[GuardFinding] = []
    echo = split_echo(question, answer)
    if not answer.strip():
        return [GuardFinding("empty", cap("empty"), "no answer was given", {})], echo
    novel = novel_units(question, answer)
    own_novel = novel_units(question, echo.own_text)
    phrases = find_phrases(answer, _non_answer_phrases())
    max_content = threshold("non_answer_max_content_words")
    words = word_equivalents(answer)
    echoed_out = bool(echo.echoed) and len(own_novel) < threshold("echo_min_novel_content_words")
    if echoed_out and not phrases:
        findings.append(
            GuardFinding(
                "echo",
                cap("echo"),
                f"{len(echo.echoed)} of {len(echo.echoed) + len(echo.own)} sentence(s) restate "
                f"the question; {len(own_novel)} content word(s) of its own remain",
                {},
            )
        )
    elif len(novel) <= max_content or (phrases and len(novel) <= 2 * max_content and words < 40):
        said = f" (says: {', '.join(phrases[:3])})" if phrases else ""
        findings.append(
            GuardFinding(
                "non_answer",
                cap("non_answer"),
                f"{len(novel)} content word(s) beyond the question's{said}",
                {},
            )
        )
    form = shape(answer)
    listed = form.items >= threshold("term_list_min_items") and form.mean_item_words <= threshold(
        "term_list_max_mean_item_words"
    )
    bare = form.function_ratio <= threshold(
        "term_list_max_function_ratio"
    ) and form.tokens >= threshold("term_list_min_tokens")
    if (
        (listed or bare)
        and form.sentence_share < threshold("term_list_max_sentence_share")
        and not findings
    ):
        findings.append(
            GuardFinding(
                "term_list",
                cap("term_list"),
                f"{form.items} listed item(s) of {form.mean_item_words:.1f} words on average, "
                f"{form.sentence_share:.0%} of the text in sentences",
                {"items": str(form.items)},
            )
        )
    return findings, echo


def off_topic_finding(
    other_question: str, own: float, best_other: float, kind: str
) -> GuardFinding:
    """The off-topic finding (the judge decided it from similarities).

    Args:
        other_question: The bank question the answer fits best.
        own: Similarity of the answer to its own question.
        best_other: Similarity to `other_question`.
        kind: "cosine" or "lexical" (how the similarities were measured).
    """
    return GuardFinding(
        "off_topic",
        cap("off_topic"),
        f"fits another bank question better ({kind} {best_other:.3f} vs {own:.3f} for its "
        f'own): "{other_question[:80]}"',
        {"other": other_question[:80]},
    )
