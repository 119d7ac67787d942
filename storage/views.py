"""Plain, JSON-friendly records returned by the storage services (never ORM objects).

Callers (graph state, API responses, notebooks) get immutable values that outlive the
database session they were read in.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, FromClause, Row

from storage.models import EVALUATIONS, MESSAGES, SESSIONS, EvaluationType

T = TypeVar("T")


def view_columns(
    view: type[Any], table: FromClause, **sources: str | ColumnElement[Any]
) -> tuple[ColumnElement[Any], ...]:
    """`table`'s columns labelled as the fields of the dataclass `view`, for `view(**row)`.

    A field takes the column of its own name unless `sources` names another column or gives
    an expression. Reads select exactly these, so a row becomes a view without a hand-written
    field-by-field copy per query (and without loading ORM objects).
    """
    columns = []
    for field in dataclasses.fields(view):
        source = sources.get(field.name, field.name)
        column = table.c[source] if isinstance(source, str) else source
        columns.append(column.label(field.name))
    return tuple(columns)


@dataclass(frozen=True)
class SessionView:
    """A prompt session."""

    id: uuid.UUID
    participant_id: str
    exam_id: str | None
    position: str
    language: str
    max_turns: int
    metadata: dict[str, Any]
    started_at: datetime
    ended_at: datetime | None
    tenant: str = "default"
    emotion_summary: dict[str, Any] | None = None
    """Seed 000 §4.2 means over the answered turns, set when the session closes."""

    @property
    def is_ended(self) -> bool:
        """Whether submission completed; an ended session is never reopened."""
        return self.ended_at is not None


@dataclass(frozen=True)
class TurnView:
    """One question and, when given, its answer."""

    turn: int
    question_id: int | None
    question_text: str
    answer_text: str | None
    asked_at: datetime
    answered_at: datetime | None
    emotion: dict[str, Any] | None = None
    """The emotion summary sent with the answer (seed 000 §4.2), if any."""


@dataclass(frozen=True)
class SubmissionView:
    """What a submission run starts from, read in the transaction that stored its transcript."""

    session: SessionView
    turns: list[TurnView]
    evaluated_turns: frozenset[int]
    """Turns that already have a TURN_EVAL."""
    has_holistic: bool
    """Whether the session already has its HOLISTIC_FLOW."""


@dataclass(frozen=True)
class EvaluationView:
    """A stored evaluation."""

    id: int
    session_id: uuid.UUID
    turn: int | None
    evaluation_type: EvaluationType
    details: dict[str, Any]
    created_at: datetime
    updated_at: datetime

    @property
    def score(self) -> float:
        """`details.score`, always present (the database guarantees it)."""
        return float(self.details["score"])


@dataclass(frozen=True)
class SessionRecord:
    """A session with its turns and evaluations, read in one transaction (a report's data)."""

    session: SessionView
    turns: list[TurnView]
    evaluations: list[EvaluationView]


@dataclass(frozen=True)
class SavedEvaluation:
    """What an upsert did: the row id and whether it was created (False: updated in place)."""

    id: int
    session_id: uuid.UUID
    turn: int | None
    created: bool


@dataclass(frozen=True)
class SimilarQuestion:
    """A bank question and its cosine distance to the query (0 = same direction)."""

    id: int
    position: str
    category: str
    language: str
    text: str
    distance: float


#: The columns of each view, for Core reads on the hot paths (`View(**row._mapping)`).
SESSION_COLUMNS = view_columns(SessionView, SESSIONS)
TURN_COLUMNS = view_columns(TurnView, MESSAGES, emotion="emotion_summary")
EVALUATION_COLUMNS = view_columns(EvaluationView, EVALUATIONS)


def joined_views(view: Callable[..., T], rows: Sequence[Row[Any]], key: str) -> list[T]:
    """Views of the children in `parent LEFT JOIN children` rows.

    The first column is the parent's (read in the same statement to tell "no parent" from
    "no children"); the others are the view's columns in field order. A parent without
    children gives one row whose `key` column is NULL: it is skipped.
    """
    return [view(*row[1:]) for row in rows if row._mapping[key] is not None]
