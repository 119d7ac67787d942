"""Emotion summaries (seed 000 §4.2) on each answered turn and, aggregated, on its session.

`prompt_messages.emotion_summary` holds what the platform's analysis sent with the answer;
`prompt_sessions.emotion_summary` the means computed when the session closes. Both are
optional (NULL = no data) and checked for their basic shape by the database.

Revision ID: 0006_message_emotion
Revises: 0005_job_queue
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006_message_emotion"
down_revision: str | None = "0005_job_queue"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("prompt_messages", "prompt_sessions")
EMOTION_SHAPE = (
    "emotion_summary IS NULL OR (jsonb_typeof(emotion_summary) = 'object'"
    " AND emotion_summary ? 'dominant_emotion'"
    " AND jsonb_typeof(emotion_summary->'dominant_emotion') = 'string'"
    " AND emotion_summary ? 'emotion_scores'"
    " AND jsonb_typeof(emotion_summary->'emotion_scores') = 'object')"
)


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("emotion_summary", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        )
        op.create_check_constraint("emotion_summary_shape", table, EMOTION_SHAPE)


def downgrade() -> None:
    for table in TABLES:
        op.drop_constraint(op.f(f"ck_{table}_emotion_summary_shape"), table, type_="check")
        op.drop_column(table, "emotion_summary")
