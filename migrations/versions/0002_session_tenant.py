"""Sessions belong to a tenant; an optional candidate token (stored as its SHA-256).

Existing sessions move to tenant 'default', the tenant of a bare key in API_KEYS.

Revision ID: 0002_session_tenant
Revises: 0001
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_session_tenant"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "prompt_sessions",
        sa.Column(
            "tenant", sa.String(length=64), server_default=sa.text("'default'"), nullable=False
        ),
    )
    op.add_column(
        "prompt_sessions",
        sa.Column("candidate_token_sha256", sa.String(length=64), nullable=True),
    )
    op.create_index(op.f("ix_prompt_sessions_tenant"), "prompt_sessions", ["tenant"])


def downgrade() -> None:
    op.drop_index(op.f("ix_prompt_sessions_tenant"), table_name="prompt_sessions")
    op.drop_column("prompt_sessions", "candidate_token_sha256")
    op.drop_column("prompt_sessions", "tenant")
