"""The service's used token ids: a token's `jti` is accepted once across every replica.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "used_tokens",
        sa.Column("issuer", sa.String(64), primary_key=True),
        sa.Column("jti", sa.String(128), primary_key=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_used_tokens_expires_at", "used_tokens", ["expires_at"])


def downgrade() -> None:
    op.drop_table("used_tokens")
