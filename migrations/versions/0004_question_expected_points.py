"""questions.expected_points: the ideas a good answer to the question covers (3-6, JSONB).

Both judges use them as the reference for an answer; existing rows get an empty list until
`seed-questions` fills them in from the packaged bank.

Revision ID: 0004_question_expected_points
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004_question_expected_points"
down_revision: str | None = "0002_session_tenant"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "questions",
        sa.Column(
            "expected_points",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.create_check_constraint(
        "expected_points_is_array",
        "questions",
        "jsonb_typeof(expected_points) = 'array'",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_questions_expected_points_is_array"), "questions", type_="check")
    op.drop_column("questions", "expected_points")
