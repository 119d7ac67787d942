"""What a turn asked for (`details.intent`) and what its answer did (`details.intent_types`).

Seed 002 stores both with every TURN_EVAL. `intent` is the question's category (the caller's,
else the matching bank question's, else "general"). `intent_types` come from a closed
vocabulary (`lexicons/intents.json`: explained, gave_example, cited_figures,
compared_options, described_steps, used_technical_terms, declined, restated_question,
listed_terms, off_topic, addressed_evaluator, no_answer), in that order. The heuristic judge
derives them from its guards, its evidence and cue phrases (English and Korean); the LLM
judge is asked for the content ones and the guard ones are added from the shared guards.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from nodes.judges.heuristic.features import find_phrases
from nodes.judges.lexicons import load

#: The intent of a question without a known category.
DEFAULT_INTENT = "general"
#: The intent type of each guard finding (and of text addressed to the evaluator).
GUARD_INTENTS = {
    "empty": "no_answer",
    "injection_only": "addressed_evaluator",
    "non_answer": "declined",
    "echo": "restated_question",
    "term_list": "listed_terms",
    "off_topic": "off_topic",
}
INJECTION_INTENT = "addressed_evaluator"
#: Intent types an LLM is asked to choose from (the guard ones come from the guards).
CONTENT_INTENTS = (
    "explained",
    "gave_example",
    "cited_figures",
    "compared_options",
    "described_steps",
    "used_technical_terms",
)
#: Distinct cue phrases a text needs before it counts as describing steps ("then" alone no).
STEP_CUES_NEEDED = 2


@cache
def intent_vocabulary() -> tuple[str, ...]:
    """Every intent type, in the order they are listed."""
    return tuple(load("intents")["vocabulary"])


def question_intent(*categories: str | None) -> str:
    """The first known category, slugged ("Troubleshooting" -> "troubleshooting")."""
    for category in categories:
        if category and category.strip():
            return "_".join(category.strip().lower().split())
    return DEFAULT_INTENT


def cue_intents(text: str) -> list[str]:
    """Content intent types shown by cue phrases: explained, compared_options, steps."""
    cues = load("intents")["cues"]
    found = []
    for name, needed in (
        ("explained", 1),
        ("compared_options", 1),
        ("described_steps", STEP_CUES_NEEDED),
    ):
        phrases = [*cues[name]["en"], *cues[name]["ko"]]
        if len(set(find_phrases(text, phrases))) >= needed:
            found.append(name)
    return found


def ordered(types: Iterable[str]) -> list[str]:
    """Known intent types, de-duplicated, in vocabulary order (unknown ones dropped)."""
    wanted = set(types)
    return [name for name in intent_vocabulary() if name in wanted]
