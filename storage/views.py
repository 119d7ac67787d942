"""Plain, JSON-friendly records returned by the storage services (never ORM objects).

Callers (graph state, API responses, notebooks) get immutable values that outlive the
database session they were read in.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from storage.models import EvaluationType


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
