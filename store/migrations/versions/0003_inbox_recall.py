"""The inbox records a bundle's first download and its recall by the discloser.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.add_column(sa.Column("downloaded_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("recalled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox") as batch:
        batch.drop_column("recalled_at")
        batch.drop_column("downloaded_at")
