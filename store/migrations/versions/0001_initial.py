"""The initial schema: content, notes, inbox, outbox, records, the audit chain and its checkpoints.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
RID = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "request_keys",
        sa.Column("request_id", RID, primary_key=True),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("destroyed_at", TS, nullable=True),
    )
    op.create_table(
        "request_content",
        sa.Column("request_id", RID, primary_key=True),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "notes",
        sa.Column("request_id", RID, primary_key=True),
        sa.Column("step", sa.String(80), primary_key=True),
        sa.Column("ciphertext", sa.LargeBinary, nullable=False),
    )
    op.create_table(
        "inbox",
        sa.Column("request_id", RID, primary_key=True),
        sa.Column("sender", RID, nullable=False),
        sa.Column("recipient", RID, nullable=False, index=True),
        sa.Column("bundle", sa.LargeBinary, nullable=True),
        sa.Column("bundle_sha256", sa.String(64), nullable=False),
        sa.Column("withheld_identities", sa.Integer, nullable=False),
        sa.Column("delivered_at", TS, nullable=False),
        sa.Column("acknowledged_at", TS, nullable=True),
        sa.Column("destroyed_at", TS, nullable=True),
        sa.Column("pushed_at", TS, nullable=True),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
        sa.Column("request_id", RID, nullable=False, index=True),
        sa.Column("step", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("to_contact", RID, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("address", sa.String(2048), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("failed_at", TS, nullable=True),
        sa.Column("failure", sa.String(200), nullable=True),
    )
    op.create_index("ix_outbox_request_step", "outbox", ["request_id", "step"])
    op.create_table(
        "records",
        sa.Column("request_id", RID, primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_table(
        "audit",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("request_id", RID, nullable=False, index=True),
        sa.Column("step", sa.String(80), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("actor", RID, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.UniqueConstraint("request_id", "step", name="uq_audit_step"),
    )
    head = op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("signature", sa.String(128), nullable=False),
    )


def downgrade() -> None:
    for table in ("audit_checkpoints", "audit_head", "audit", "records", "outbox", "inbox", "notes",
                  "request_content", "request_keys"):
        op.drop_table(table)
