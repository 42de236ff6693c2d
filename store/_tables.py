"""The store's tables (SQLAlchemy Core). The alembic migrations under `migrations/` create them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Timestamps are stored in UTC and come back timezone-aware on every backend (SQLite drops it)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# The column kinds several tables share, so that each is one type everywhere.


def _id(name: str = "request_id", **kw: Any) -> sa.Column[Any]:
    """A request, agency or contact id (schemas allow 64 characters at most)."""
    return sa.Column(name, sa.String(64), nullable=False, **kw)


def _step(**kw: Any) -> sa.Column[Any]:
    return sa.Column("step", sa.String(80), nullable=False, **kw)


def _sha256(name: str) -> sa.Column[Any]:
    return sa.Column(name, sa.String(64), nullable=False)


def _at(name: str, *, nullable: bool = True) -> sa.Column[Any]:
    return sa.Column(name, UTCDateTime(), nullable=nullable)


def _blob(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.LargeBinary, nullable=nullable)


metadata = sa.MetaData()

# A request's data key, wrapped by the store key; None once destroyed (crypto-shredding).
request_keys = sa.Table(
    "request_keys", metadata,
    _id(primary_key=True), _blob("wrapped_key", nullable=True), _at("created_at", nullable=False), _at("destroyed_at"),
)
request_content = sa.Table("request_content", metadata, _id(primary_key=True), _blob("ciphertext"))
notes = sa.Table("notes", metadata, _id(primary_key=True), _step(primary_key=True), _blob("ciphertext"))

inbox = sa.Table(
    "inbox", metadata,
    _id(primary_key=True), _id("sender"), _id("recipient", index=True),
    _blob("bundle", nullable=True), _sha256("bundle_sha256"),
    sa.Column("withheld_identities", sa.Integer, nullable=False),
    _at("delivered_at", nullable=False), _at("acknowledged_at"), _at("destroyed_at"), _at("pushed_at"),
)

outbox = sa.Table(
    "outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
    _id(index=True), _step(),
    sa.Column("kind", sa.String(64), nullable=False),
    _id("to_contact"),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("address", sa.String(2048), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    _at("created_at", nullable=False), _at("sent_at"), _at("failed_at"),
    sa.Column("failure", sa.String(200), nullable=True),
    sa.Index("ix_outbox_request_step", "request_id", "step"),
)

records = sa.Table(
    "records", metadata,
    _id(primary_key=True), sa.Column("body", sa.Text, nullable=False), _at("updated_at", nullable=False),
)

audit = sa.Table(
    "audit", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    _id(index=True), _step(),
    sa.Column("event", sa.String(64), nullable=False),
    _id("actor"), _at("at", nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    _sha256("prev_hash"), _sha256("hash"),
    sa.UniqueConstraint("request_id", "step", name="uq_audit_step"),
)

# One row: the chain's head. Every append locks it first (SELECT ... FOR UPDATE on PostgreSQL,
# BEGIN IMMEDIATE on SQLite), so appenders in any number of processes keep one linear chain.
audit_head = sa.Table(
    "audit_head", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False), _sha256("hash"),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    _sha256("hash"), _at("at", nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
)

# The service's callers' token ids (RFC 7523 `jti`), each accepted once in every replica: kept
# until the token expires, then purged.
used_tokens = sa.Table(
    "used_tokens", metadata,
    _id("issuer", primary_key=True), sa.Column("jti", sa.String(128), primary_key=True),
    _at("expires_at", nullable=False), sa.Index("ix_used_tokens_expires_at", "expires_at"),
)
