"""The reference an answer is judged against: its bank question's expected points.

Every bank question carries 3-6 expected points (`storage/data/questions.json`, also in the
`questions.expected_points` column). A question that is in the bank (the same text, or an
embedding cosine >= `bank_match_cosine` to a bank question of the position) uses that
question's points; a question an LLM wrote carries its own (`TurnCase.expected_points`);
anything else falls back to the position's rubric. The bank is also what the off-topic
guard compares an answer with: an answer that fits another bank question far better than
its own answers a different question.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from storage.bank import load_bank


@dataclass(frozen=True)
class BankEntry:
    """One bank question as the judges see it."""

    position: str
    language: str
    text: str
    points: tuple[str, ...]
    category: str = ""


@cache
def bank_entries() -> tuple[BankEntry, ...]:
    """The packaged bank (read once)."""
    return tuple(
        BankEntry(
            position=q.position,
            language=q.language,
            text=q.text,
            points=q.expected_points,
            category=q.category,
        )
        for q in load_bank()
    )


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@cache
def _by_text() -> dict[tuple[str, str], BankEntry]:
    return {(e.position, _norm(e.text)): e for e in bank_entries()}


def exact_entry(position: str, question: str) -> BankEntry | None:
    """The bank question of `position` with exactly this text (whitespace/case-insensitive)."""
    return _by_text().get((position.strip().lower(), _norm(question)))


def position_entries(position: str, language: str | None = None) -> tuple[BankEntry, ...]:
    """Bank questions of a position (optionally of one language), in bank order."""
    key = position.strip().lower()
    return tuple(
        e
        for e in bank_entries()
        if e.position == key and (language is None or e.language == language)
    )
