"""The child index: each request's consistent child identifier as a keyed hash, never the identifier.

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
        "child_index",
        sa.Column("request_id", sa.String(64), primary_key=True),
        sa.Column("child_key", sa.String(64), nullable=False, index=True),
        sa.Column("disclosing_agency", sa.String(64), nullable=False),
        sa.Column("recipient_agency", sa.String(64), nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("child_index")
