"""ORM models: the schema of seed 002 (evaluations) and seed 001 (question bank).

The database enforces every evaluation rule itself (ENUM, CHECKs, partial unique indexes,
composite FK), so no code path, not even raw SQL, can store a duplicate or malformed
evaluation. `EvaluationStorageService` validates the same rules first to give clear errors.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from pgvector.sqlalchemy import Vector
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy import text as sql_text  # `text` is also a Question column
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from storage.settings import DEFAULT_TENANT

#: Stable constraint names, so migrations never depend on generated names.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base carrying the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    """created_at / updated_at kept by the database (seed 004 `TimestampMixin`)."""

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now(), onupdate=func.now()
    )


class EvaluationType(enum.StrEnum):
    """The two evaluation kinds of seed 002: node 4 per turn, node 6a for the whole flow."""

    TURN_EVAL = "TURN_EVAL"
    HOLISTIC_FLOW = "HOLISTIC_FLOW"


evaluation_type_enum = Enum(
    EvaluationType,
    name="evaluation_type_enum",
    values_callable=lambda members: [member.value for member in members],
    validate_strings=True,
)


#: What the database insists on for an emotion summary (the full rules: storage.emotions).
EMOTION_SHAPE = (
    "emotion_summary IS NULL OR (jsonb_typeof(emotion_summary) = 'object'"
    " AND emotion_summary ? 'dominant_emotion'"
    " AND jsonb_typeof(emotion_summary->'dominant_emotion') = 'string'"
    " AND emotion_summary ? 'emotion_scores'"
    " AND jsonb_typeof(emotion_summary->'emotion_scores') = 'object')"
)


class PromptSession(TimestampMixin, Base):
    """One interview attempt. A retry is a new session; an ended session never reopens."""

    __tablename__ = "prompt_sessions"
    __table_args__ = (
        CheckConstraint("max_turns >= 1", name="max_turns_positive"),
        CheckConstraint(EMOTION_SHAPE, name="emotion_summary_shape"),
        Index(None, "participant_id", "started_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), primary_key=True, server_default=text("gen_random_uuid()")
    )
    tenant: Mapped[str] = mapped_column(
        String(64), nullable=False, index=True, server_default=text(f"'{DEFAULT_TENANT}'")
    )
    """Who created the session (the tenant of its API key); other tenants never see it."""
    candidate_token_sha256: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 (hex) of the session's candidate token; the token itself is never stored."""
    participant_id: Mapped[str] = mapped_column(String(200), nullable=False)
    exam_id: Mapped[str | None] = mapped_column(String(200))
    position: Mapped[str] = mapped_column(String(100), nullable=False)
    language: Mapped[str] = mapped_column(String(10), nullable=False)
    max_turns: Mapped[int] = mapped_column(Integer, nullable=False)
    metadata_: Mapped[dict[str, Any]] = mapped_column(
        "metadata", JSONB(none_as_null=True), nullable=False, server_default=text("'{}'::jsonb")
    )
    started_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    emotion_summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    """Seed 000 §4.2, aggregated over the answered turns when the session closes (None: no
    turn had data): mean score per emotion, the dominant one, `turns_with_data`."""

    messages: Mapped[list[PromptMessage]] = relationship(
        back_populates="session", order_by="PromptMessage.turn", passive_deletes=True
    )


class PromptMessage(Base):
    """One turn: the question asked and, once given, the candidate's answer."""

    __tablename__ = "prompt_messages"
    __table_args__ = (
        UniqueConstraint("session_id", "turn"),
        CheckConstraint("turn >= 1", name="turn_positive"),
        CheckConstraint(EMOTION_SHAPE, name="emotion_summary_shape"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("prompt_sessions.id", ondelete="CASCADE"), nullable=False
    )
    turn: Mapped[int] = mapped_column(Integer, nullable=False)
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id", ondelete="SET NULL"))
    question_text: Mapped[str] = mapped_column(Text, nullable=False)
    answer_text: Mapped[str | None] = mapped_column(Text)
    asked_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )
    answered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    emotion_summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB(none_as_null=True))
    """Seed 000 §4.2 summary sent with the answer (optional; `storage.emotions` checks it).
    Never read by a judge."""

    session: Mapped[PromptSession] = relationship(back_populates="messages")


class PromptEvaluation(TimestampMixin, Base):
    """A TURN_EVAL (node 4) or HOLISTIC_FLOW (node 6a) result; everything lives in `details`."""

    __tablename__ = "prompt_evaluations"
    __table_args__ = (
        CheckConstraint(
            "(evaluation_type = 'TURN_EVAL' AND turn IS NOT NULL)"
            " OR (evaluation_type = 'HOLISTIC_FLOW' AND turn IS NULL)",
            name="turn_matches_type",
        ),
        # `?` tests presence: a bare jsonb_typeof() check would pass on a missing key (NULL).
        CheckConstraint(
            "jsonb_typeof(details) = 'object'"
            " AND details ? 'score' AND jsonb_typeof(details->'score') = 'number'"
            " AND (details->>'score')::numeric BETWEEN 0 AND 100"
            " AND details ? 'analysis' AND jsonb_typeof(details->'analysis') = 'string'",
            name="details_shape",
        ),
        # MATCH SIMPLE: the FK is checked only when turn is not NULL (HOLISTIC_FLOW skips it).
        ForeignKeyConstraint(
            ["session_id", "turn"],
            ["prompt_messages.session_id", "prompt_messages.turn"],
            ondelete="CASCADE",
        ),
        Index(
            "uq_prompt_evaluations_turn_eval",
            "session_id",
            "turn",
            "evaluation_type",
            unique=True,
            postgresql_where=text("evaluation_type = 'TURN_EVAL'"),
        ),
        Index(
            "uq_prompt_evaluations_holistic_flow",
            "session_id",
            unique=True,
            postgresql_where=text("evaluation_type = 'HOLISTIC_FLOW'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("prompt_sessions.id", ondelete="CASCADE"), nullable=False
    )
    turn: Mapped[int | None] = mapped_column(Integer)
    evaluation_type: Mapped[EvaluationType] = mapped_column(evaluation_type_enum, nullable=False)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB(none_as_null=True), nullable=False)


#: WHERE clauses of the partial unique indexes; upserts must repeat them (`index_where=`).
TURN_EVAL_INDEX_WHERE = text("evaluation_type = 'TURN_EVAL'")
HOLISTIC_INDEX_WHERE = text("evaluation_type = 'HOLISTIC_FLOW'")


class Question(Base):
    """A bank question, with its embedding for similarity search (seed 001 §4.1)."""

    __tablename__ = "questions"
    __table_args__ = (
        UniqueConstraint("position", "text"),
        Index(
            "ix_questions_embedding_hnsw",
            "embedding",
            postgresql_using="hnsw",
            postgresql_with={"m": 16, "ef_construction": 64},
            postgresql_ops={"embedding": "vector_cosine_ops"},
        ),
        Index(None, "position", "language"),
        CheckConstraint("jsonb_typeof(expected_points) = 'array'", name="expected_points_is_array"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    position: Mapped[str] = mapped_column(String(100), nullable=False)
    category: Mapped[str] = mapped_column(String(100), nullable=False)
    language: Mapped[str] = mapped_column(String(10), nullable=False)
    text: Mapped[str] = mapped_column(Text, nullable=False)
    expected_points: Mapped[list[str]] = mapped_column(
        JSONB(none_as_null=True), nullable=False, server_default=sql_text("'[]'::jsonb")
    )
    """The 3-6 ideas a good answer covers, in the question's language (the judges' reference)."""
    embedding: Mapped[list[float]] = mapped_column(Vector(), nullable=False)
    """`vector(EMBEDDING_DIM)` in the database: the migration fixes the dimension when it runs
    and `Storage.open` checks it against the embedder, so importing this module reads no
    settings."""
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), nullable=False, server_default=func.now()
    )


#: The tables, for the Core statements of the hot paths (no ORM objects loaded).
SESSIONS = Base.metadata.tables[PromptSession.__tablename__]
MESSAGES = Base.metadata.tables[PromptMessage.__tablename__]
EVALUATIONS = Base.metadata.tables[PromptEvaluation.__tablename__]
QUESTIONS = Base.metadata.tables[Question.__tablename__]
