"""Initial schema: sessions, messages, evaluations (seed 002) and the question bank (seed 001).

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import pgvector.sqlalchemy
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from storage.settings import StorageSettings  # read in upgrade(), never at import

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

evaluation_type_enum = postgresql.ENUM(
    "TURN_EVAL", "HOLISTIC_FLOW", name="evaluation_type_enum", create_type=False
)


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    # No checkfirst: it looks for any *visible* type of that name, e.g. another turnjudge's in
    # public behind DB_SCHEMA's schema on the search_path, and would then reuse it.
    evaluation_type_enum.create(op.get_bind(), checkfirst=False)

    op.create_table(
        "questions",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("position", sa.String(length=100), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column(
            "embedding",
            pgvector.sqlalchemy.Vector(dim=StorageSettings().embedding_dim),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_questions")),
        sa.UniqueConstraint("position", "text", name=op.f("uq_questions_position_text")),
    )
    op.create_index(
        "ix_questions_embedding_hnsw",
        "questions",
        ["embedding"],
        postgresql_using="hnsw",
        postgresql_with={"m": 16, "ef_construction": 64},
        postgresql_ops={"embedding": "vector_cosine_ops"},
    )
    op.create_index(op.f("ix_questions_position_language"), "questions", ["position", "language"])

    op.create_table(
        "prompt_sessions",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("participant_id", sa.String(length=200), nullable=False),
        sa.Column("exam_id", sa.String(length=200), nullable=True),
        sa.Column("position", sa.String(length=100), nullable=False),
        sa.Column("language", sa.String(length=10), nullable=False),
        sa.Column("max_turns", sa.Integer(), nullable=False),
        sa.Column(
            "metadata",
            postgresql.JSONB(astext_type=sa.Text(), none_as_null=True),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("max_turns >= 1", name=op.f("ck_prompt_sessions_max_turns_positive")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_sessions")),
    )
    op.create_index(
        op.f("ix_prompt_sessions_participant_id_started_at"),
        "prompt_sessions",
        ["participant_id", "started_at"],
    )

    op.create_table(
        "prompt_messages",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("question_id", sa.BigInteger(), nullable=True),
        sa.Column("question_text", sa.Text(), nullable=False),
        sa.Column("answer_text", sa.Text(), nullable=True),
        sa.Column(
            "asked_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("turn >= 1", name=op.f("ck_prompt_messages_turn_positive")),
        sa.ForeignKeyConstraint(
            ["question_id"],
            ["questions.id"],
            name=op.f("fk_prompt_messages_question_id_questions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["prompt_sessions.id"],
            name=op.f("fk_prompt_messages_session_id_prompt_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_messages")),
        sa.UniqueConstraint("session_id", "turn", name=op.f("uq_prompt_messages_session_id_turn")),
    )

    op.create_table(
        "prompt_evaluations",
        sa.Column("id", sa.BigInteger(), sa.Identity(), nullable=False),
        sa.Column("session_id", sa.UUID(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=True),
        sa.Column("evaluation_type", evaluation_type_enum, nullable=False),
        sa.Column(
            "details",
            postgresql.JSONB(astext_type=sa.Text(), none_as_null=True),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "(evaluation_type = 'TURN_EVAL' AND turn IS NOT NULL)"
            " OR (evaluation_type = 'HOLISTIC_FLOW' AND turn IS NULL)",
            name=op.f("ck_prompt_evaluations_turn_matches_type"),
        ),
        sa.CheckConstraint(
            "jsonb_typeof(details) = 'object'"
            " AND details ? 'score' AND jsonb_typeof(details->'score') = 'number'"
            " AND (details->>'score')::numeric BETWEEN 0 AND 100"
            " AND details ? 'analysis' AND jsonb_typeof(details->'analysis') = 'string'",
            name=op.f("ck_prompt_evaluations_details_shape"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id", "turn"],
            ["prompt_messages.session_id", "prompt_messages.turn"],
            name=op.f("fk_prompt_evaluations_session_id_turn_prompt_messages"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["prompt_sessions.id"],
            name=op.f("fk_prompt_evaluations_session_id_prompt_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompt_evaluations")),
    )
    op.create_index(
        "uq_prompt_evaluations_turn_eval",
        "prompt_evaluations",
        ["session_id", "turn", "evaluation_type"],
        unique=True,
        postgresql_where=sa.text("evaluation_type = 'TURN_EVAL'"),
    )
    op.create_index(
        "uq_prompt_evaluations_holistic_flow",
        "prompt_evaluations",
        ["session_id"],
        unique=True,
        postgresql_where=sa.text("evaluation_type = 'HOLISTIC_FLOW'"),
    )


def downgrade() -> None:
    op.drop_index("uq_prompt_evaluations_holistic_flow", table_name="prompt_evaluations")
    op.drop_index("uq_prompt_evaluations_turn_eval", table_name="prompt_evaluations")
    op.drop_table("prompt_evaluations")
    op.drop_table("prompt_messages")
    op.drop_index(
        op.f("ix_prompt_sessions_participant_id_started_at"), table_name="prompt_sessions"
    )
    op.drop_table("prompt_sessions")
    op.drop_index(op.f("ix_questions_position_language"), table_name="questions")
    op.drop_index("ix_questions_embedding_hnsw", table_name="questions")
    op.drop_table("questions")
    # Autogenerate never drops ENUM types; without this a re-upgrade fails on "already exists".
    evaluation_type_enum.drop(op.get_bind(), checkfirst=True)
    # The vector extension is left installed: other schemas in the database may use it.
