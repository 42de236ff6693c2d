"""The store: SQLAlchemy Core over SQLite (default) or any async URL.

Content is encrypted under a per-request data key, itself wrapped by the deployment's store key.
Destroying the data key and the ciphertext at retention expiry is what deletion means here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

import crypto

from . import _audit, _migrate


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


metadata = sa.MetaData()

request_keys = sa.Table(
    "request_keys",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("destroyed_at", UTCDateTime(), nullable=True),
)

request_content = sa.Table(
    "request_content",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
)

notes = sa.Table(
    "notes",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.String(80), primary_key=True),
    sa.Column("ciphertext", sa.LargeBinary, nullable=False),
)

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("sender", sa.String(64), nullable=False),
    sa.Column("recipient", sa.String(64), nullable=False, index=True),
    sa.Column("bundle", sa.LargeBinary, nullable=True),
    sa.Column("bundle_sha256", sa.String(64), nullable=False),
    sa.Column("withheld_identities", sa.Integer, nullable=False),
    sa.Column("delivered_at", UTCDateTime(), nullable=False),
    sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
    sa.Column("destroyed_at", UTCDateTime(), nullable=True),
    sa.Column("pushed_at", UTCDateTime(), nullable=True),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("step", sa.String(80), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("to_contact", sa.String(64), nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("address", sa.String(2048), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
    sa.Column("failed_at", UTCDateTime(), nullable=True),
    sa.Column("failure", sa.String(200), nullable=True),
    sa.Index("ix_outbox_request_step", "request_id", "step"),
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("request_id", sa.String(64), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

audit = sa.Table(
    "audit",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("step", sa.String(80), nullable=False),
    sa.Column("event", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.UniqueConstraint("request_id", "step", name="uq_audit_step"),
)

# One row: the chain's head. Every append locks it first (SELECT ... FOR UPDATE on PostgreSQL,
# BEGIN IMMEDIATE on SQLite), so appenders in any number of processes keep one linear chain.
audit_head = sa.Table(
    "audit_head",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

audit_checkpoints = sa.Table(
    "audit_checkpoints",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("hash", sa.String(64), nullable=False),
    sa.Column("at", UTCDateTime(), nullable=False),
    sa.Column("signature", sa.String(128), nullable=False),
)


class StoreError(Exception):
    """Base of the store's errors."""


class ContentDestroyed(StoreError):
    def __init__(self, request_id: str, destroyed_at: datetime | None = None) -> None:
        super().__init__(f"request {request_id}: content destroyed at retention expiry")
        self.destroyed_at = destroyed_at


class NotFound(StoreError):
    def __init__(self, what: str, request_id: str) -> None:
        super().__init__(f"request {request_id}: no {what}")


class SchemaOutOfDate(StoreError):
    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"database schema is at revision {current or 'none'}, this code needs {head}: "
            "run `safeshare db upgrade`"
        )


@dataclass(frozen=True)
class OutgoingNotice:
    dedupe_key: str
    kind: str
    to_contact: str
    channel: str
    address: str
    subject: str
    body: str


@dataclass(frozen=True)
class AuditStep:
    """One audited step as the store keeps it: its audit entry, encrypted note and notifications."""

    step: str
    event: str
    actor: str
    at: datetime
    data: dict[str, Any]
    note: str | None
    notices: list[OutgoingNotice]


class Store:
    def __init__(
        self, engine: AsyncEngine, store_key: bytes, *,
        audit_key: crypto.SigningKey | None = None, checkpoint_every: int = 100,
    ) -> None:
        self._engine = engine
        # Every write transaction takes SQLite's write lock at BEGIN (PostgreSQL ignores the
        # option): one that read first and wrote second could fail at once on a busy database.
        self._writer = engine.execution_options(sqlite_begin="IMMEDIATE")
        self._store_key = store_key
        self._audit_key = audit_key
        self._checkpoint_every = checkpoint_every

    @classmethod
    async def open(
        cls, url: str, store_key: bytes, *, audit_key: crypto.SigningKey | None = None,
        checkpoint_every: int = 100, upgrade: bool | None = None,
    ) -> Store:
        """Open the store. SQLite (the one-machine backend) is upgraded to the current schema on
        open, so a fresh clone needs no manual step; other databases must be upgraded with
        `safeshare db upgrade` first (a deployment step), and opening refuses until they are."""
        engine = make_engine(url)
        if upgrade if upgrade is not None else engine.dialect.name == "sqlite":
            try:
                await _migrate.upgrade(engine)
            except _migrate.UnmanagedSchema as err:
                await engine.dispose()
                raise StoreError(str(err)) from None
        else:
            current, head = await _migrate.revisions(engine)
            if current != head:
                await engine.dispose()
                raise SchemaOutOfDate(current, head)
        return cls(engine, store_key, audit_key=audit_key, checkpoint_every=checkpoint_every)

    async def close(self) -> None:
        await self._engine.dispose()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    # --- content -------------------------------------------------------------------------------

    async def put_request(self, request_id: str, plaintext: bytes, now: datetime) -> bool:
        """Store a request's content under a new data key. False if it was already stored."""
        data_key = crypto.new_key()
        aad = request_id.encode()
        async with self._writer.begin() as conn:
            exists = await conn.scalar(
                sa.select(request_keys.c.request_id).where(request_keys.c.request_id == request_id)
            )
            if exists:
                return False
            await conn.execute(
                request_keys.insert().values(
                    request_id=request_id,
                    wrapped_key=crypto.encrypt(self._store_key, data_key, b"dek|" + aad),
                    created_at=now,
                )
            )
            await conn.execute(
                request_content.insert().values(
                    request_id=request_id, ciphertext=crypto.encrypt(data_key, plaintext, aad)
                )
            )
        return True

    async def get_request(self, request_id: str) -> bytes:
        async with self._engine.connect() as conn:
            data_key = await self._data_key(conn, request_id)
            blob = await conn.scalar(
                sa.select(request_content.c.ciphertext).where(
                    request_content.c.request_id == request_id
                )
            )
        if blob is None:
            raise ContentDestroyed(request_id)
        return crypto.decrypt(data_key, blob, request_id.encode())

    async def _data_key(self, conn: AsyncConnection, request_id: str) -> bytes:
        row = (
            await conn.execute(
                sa.select(request_keys.c.wrapped_key, request_keys.c.destroyed_at)
                .where(request_keys.c.request_id == request_id)
            )
        ).first()
        if row is None:
            raise NotFound("content", request_id)
        if row.wrapped_key is None:
            raise ContentDestroyed(request_id, row.destroyed_at)
        return crypto.decrypt(self._store_key, row.wrapped_key, b"dek|" + request_id.encode())

    async def notes_for(self, request_id: str) -> dict[str, str]:
        """Each audited step's note (reasons, challenge text), by step; ContentDestroyed once shredded."""
        async with self._engine.connect() as conn:
            data_key = await self._data_key(conn, request_id)
            rows = await conn.execute(
                sa.select(notes.c.step, notes.c.ciphertext).where(notes.c.request_id == request_id)
            )
            aad = request_id.encode()
            return {r.step: crypto.decrypt(data_key, r.ciphertext, aad).decode() for r in rows}

    # --- audited steps -------------------------------------------------------------------------

    async def record_step(
        self,
        *,
        request_id: str,
        step: str,
        event: str,
        actor: str,
        at: datetime,
        data: dict[str, Any],
        note: str | None,
        notices: list[OutgoingNotice],
        now: datetime,
    ) -> bool:
        """Append the audit entry, the encrypted note and the notifications in one transaction.

        Keyed on (request_id, step): a retried activity finds its step done and changes nothing.
        """
        done = await self.record_steps(
            request_id, [AuditStep(step=step, event=event, actor=actor, at=at, data=data, note=note,
                                   notices=notices)], now=now,
        )
        return bool(done)

    async def record_steps(
        self, request_id: str, steps: list[AuditStep], *, record: tuple[str, datetime] | None = None,
        acknowledged_at: datetime | None = None, now: datetime,
    ) -> list[str]:
        """Several audited steps, the decision record as it now stands and an acknowledgement, in
        one transaction: all of it is stored or none. Returns the steps newly recorded; a retry
        finds its steps done and appends nothing twice."""
        recorded = []
        async with self._chain() as (conn, head):
            for s in steps:
                done = await conn.scalar(
                    sa.select(audit.c.seq).where(audit.c.request_id == request_id, audit.c.step == s.step)
                )
                if done is not None:
                    continue
                await self._append(conn, head, request_id=request_id, step=s.step, event=s.event, actor=s.actor,
                                   at=s.at, data=s.data, now=now)
                if s.note is not None:
                    data_key = await self._data_key(conn, request_id)
                    await conn.execute(
                        notes.insert().values(
                            request_id=request_id, step=s.step,
                            ciphertext=crypto.encrypt(data_key, s.note.encode(), request_id.encode()),
                        )
                    )
                for n in s.notices:
                    await conn.execute(
                        outbox.insert().values(
                            dedupe_key=n.dedupe_key, request_id=request_id, step=s.step, kind=n.kind,
                            to_contact=n.to_contact, channel=n.channel, address=n.address,
                            subject=n.subject, body=n.body, created_at=now,
                        )
                    )
                recorded.append(s.step)
            if acknowledged_at is not None:
                await self._mark_acknowledged(conn, request_id, acknowledged_at)
            if record is not None:
                await self._put_record(conn, request_id, *record)
        return recorded

    @asynccontextmanager
    async def _chain(self) -> AsyncIterator[tuple[AsyncConnection, dict[str, Any]]]:
        """A transaction holding the chain head's lock, in this and every other process."""
        async with self._writer.begin() as conn:
            head = (
                await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1).with_for_update())
            ).one()
            yield conn, dict(head._mapping)

    async def _append(
        self, conn: AsyncConnection, head: dict[str, Any], *, request_id: str, step: str, event: str,
        actor: str, at: datetime, data: dict[str, Any], now: datetime,
    ) -> None:
        seq, prev_hash = head["seq"] + 1, head["hash"]
        digest = _audit.entry_hash(seq=seq, request_id=request_id, step=step, event=event, actor=actor,
                                   at=at, data=data, prev_hash=prev_hash)
        await conn.execute(
            audit.insert().values(
                seq=seq, request_id=request_id, step=step, event=event, actor=actor, at=at,
                data=json.dumps(data, sort_keys=True), prev_hash=prev_hash, hash=digest,
            )
        )
        await conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=digest))
        head.update(seq=seq, hash=digest)
        if self._audit_key is not None and seq % self._checkpoint_every == 0:
            await self._write_checkpoint(conn, seq, digest, now)

    async def _write_checkpoint(self, conn: AsyncConnection, seq: int, digest: str, at: datetime) -> None:
        assert self._audit_key is not None
        signature = self._audit_key.sign(_audit.checkpoint_message(seq, digest, at))
        exists = await conn.scalar(sa.select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == seq))
        if exists is None:
            await conn.execute(audit_checkpoints.insert().values(seq=seq, hash=digest, at=at, signature=signature))

    async def checkpoint(self, now: datetime) -> int:
        """Sign the chain head now (e.g. at the end of a day); returns its seq (0: empty chain)."""
        if self._audit_key is None:
            raise StoreError("no audit signing key: checkpoints need the deployment's key")
        async with self._chain() as (conn, head):
            if head["seq"]:
                await self._write_checkpoint(conn, head["seq"], head["hash"], now)
        return head["seq"]

    async def verify_audit(self, public_key_b64: str | None, batch: int = 1000) -> _audit.AuditReport:
        """Recompute the whole chain, in pages, and check every checkpoint's signature."""
        async with self._engine.connect() as conn:
            head = (await conn.execute(sa.select(audit_head).where(audit_head.c.id == 1))).first()
            checkpoints = [dict(r._mapping) for r in await conn.execute(
                sa.select(audit_checkpoints).order_by(audit_checkpoints.c.seq))]
            rows: list[dict[str, Any]] = []
            after = None
            while True:
                query = sa.select(audit).order_by(audit.c.seq).limit(batch)
                if after is not None:
                    query = query.where(audit.c.seq > after)
                page = [dict(r._mapping) for r in await conn.execute(query)]
                rows.extend(page)
                if len(page) < batch:
                    break
                after = page[-1]["seq"]
        return _audit.verify_chain(rows, checkpoints, dict(head._mapping) if head else None, public_key_b64)

    async def audit_trail(self, request_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(audit).order_by(audit.c.seq)
        if request_id is not None:
            query = query.where(audit.c.request_id == request_id)
        async with self._engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def outbox_for(self, request_id: str | None = None) -> list[dict[str, Any]]:
        query = sa.select(outbox).order_by(outbox.c.id)
        if request_id is not None:
            query = query.where(outbox.c.request_id == request_id)
        async with self._engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def unsent(self, request_id: str, step: str) -> list[dict[str, Any]]:
        """A step's notifications not yet sent, nor refused by their receiver."""
        query = (
            sa.select(outbox)
            .where(outbox.c.request_id == request_id, outbox.c.step == step,
                   outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))
            .order_by(outbox.c.id)
        )
        async with self._engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def mark_sent(self, outbox_id: int, at: datetime) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                outbox.update().where(outbox.c.id == outbox_id, outbox.c.sent_at.is_(None)).values(sent_at=at)
            )

    async def mark_failed(self, outbox_id: int, at: datetime, failure: str) -> None:
        """The receiver refused it (e.g. HTTP 4xx): retrying will not help, so it is not retried."""
        async with self._writer.begin() as conn:
            await conn.execute(
                outbox.update().where(outbox.c.id == outbox_id).values(failed_at=at, failure=failure[:200])
            )

    # --- inbox ---------------------------------------------------------------------------------

    async def deliver(
        self, *, request_id: str, sender: str, recipient: str, bundle: bytes,
        withheld_identities: int, at: datetime,
    ) -> dict[str, Any]:
        """Put the bundle in the recipient's inbox once; a second call returns the first delivery."""
        row = {
            "request_id": request_id, "sender": sender, "recipient": recipient, "bundle": bundle,
            "bundle_sha256": hashlib.sha256(bundle).hexdigest(),
            "withheld_identities": withheld_identities, "delivered_at": at,
        }
        try:
            async with self._writer.begin() as conn:
                await conn.execute(inbox.insert().values(**row))
        except IntegrityError:
            existing = await self.delivery(request_id)
            assert existing is not None  # the conflict was this row
            return existing
        return row

    async def delivery(self, request_id: str) -> dict[str, Any] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(sa.select(inbox).where(inbox.c.request_id == request_id))).first()
        return dict(row._mapping) if row else None

    async def mark_pushed(self, request_id: str, at: datetime) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                inbox.update()
                .where(inbox.c.request_id == request_id, inbox.c.pushed_at.is_(None))
                .values(pushed_at=at)
            )

    async def inbox_for(self, agency: str) -> list[dict[str, Any]]:
        query = (
            sa.select(inbox.c.request_id, inbox.c.sender, inbox.c.bundle_sha256,
                      inbox.c.delivered_at, inbox.c.acknowledged_at, inbox.c.destroyed_at)
            .where(inbox.c.recipient == agency)
            .order_by(inbox.c.delivered_at)
        )
        async with self._engine.connect() as conn:
            return [dict(r._mapping) for r in await conn.execute(query)]

    async def mark_acknowledged(self, request_id: str, at: datetime) -> None:
        async with self._writer.begin() as conn:
            await self._mark_acknowledged(conn, request_id, at)

    @staticmethod
    async def _mark_acknowledged(conn: AsyncConnection, request_id: str, at: datetime) -> None:
        await conn.execute(
            inbox.update()
            .where(inbox.c.request_id == request_id, inbox.c.acknowledged_at.is_(None))
            .values(acknowledged_at=at)
        )

    # --- records -------------------------------------------------------------------------------

    async def put_record(self, request_id: str, body: str, at: datetime) -> None:
        async with self._writer.begin() as conn:
            await self._put_record(conn, request_id, body, at)

    @staticmethod
    async def _put_record(conn: AsyncConnection, request_id: str, body: str, at: datetime) -> None:
        updated = await conn.execute(
            records.update().where(records.c.request_id == request_id).values(body=body, updated_at=at)
        )
        if updated.rowcount == 0:
            await conn.execute(records.insert().values(request_id=request_id, body=body, updated_at=at))

    async def record(self, request_id: str) -> str | None:
        async with self._engine.connect() as conn:
            return await conn.scalar(sa.select(records.c.body).where(records.c.request_id == request_id))

    async def records_accepted(self, start: datetime, end: datetime) -> list[tuple[datetime, str]]:
        """(accepted at, record body) of the requests accepted in [start, end), oldest first."""
        query = (
            sa.select(request_keys.c.created_at, records.c.body)
            .join(records, records.c.request_id == request_keys.c.request_id)
            .where(request_keys.c.created_at >= start, request_keys.c.created_at < end)
            .order_by(request_keys.c.created_at, request_keys.c.request_id)
        )
        async with self._engine.connect() as conn:
            return [(r.created_at, r.body) for r in await conn.execute(query)]

    async def accepted_at(self, request_id: str) -> datetime | None:
        async with self._engine.connect() as conn:
            return await conn.scalar(
                sa.select(request_keys.c.created_at).where(request_keys.c.request_id == request_id)
            )

    # --- deletion ------------------------------------------------------------------------------

    async def destroy(self, request_id: str, at: datetime) -> None:
        """Crypto-shred: the data key goes, and with it every ciphertext made under it."""
        async with self._writer.begin() as conn:
            await conn.execute(
                request_keys.update()
                .where(request_keys.c.request_id == request_id, request_keys.c.destroyed_at.is_(None))
                .values(wrapped_key=None, destroyed_at=at)
            )
            await conn.execute(request_content.delete().where(request_content.c.request_id == request_id))
            await conn.execute(notes.delete().where(notes.c.request_id == request_id))
            await conn.execute(
                inbox.update()
                .where(inbox.c.request_id == request_id, inbox.c.destroyed_at.is_(None))
                .values(bundle=None, destroyed_at=at)
            )

    async def has_request(self, request_id: str) -> bool:
        async with self._engine.connect() as conn:
            for table in (request_keys, records, inbox, outbox, audit):
                if await conn.scalar(sa.select(table.c.request_id).where(table.c.request_id == request_id).limit(1)):
                    return True
        return False


async def upgrade_database(url: str) -> tuple[str | None, str]:
    """`safeshare db upgrade`: bring the database at url to the current schema; (before, after)."""
    engine = make_engine(url)
    try:
        before, _ = await _migrate.revisions(engine)
        await _migrate.upgrade(engine)
        after, _ = await _migrate.revisions(engine)
    except _migrate.UnmanagedSchema as err:
        raise StoreError(str(err)) from None
    finally:
        await engine.dispose()
    assert after is not None
    return before, after


def make_engine(url: str) -> AsyncEngine:
    # pool_pre_ping: after a database restart or a dropped connection, the pool replaces dead
    # connections on checkout instead of failing the first statement on each.
    engine = create_async_engine(url, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # The driver's own implicit transactions are turned off so that _sqlite_begin decides how each
    # one begins (SQLAlchemy's documented recipe). WAL lets the CLI read while a worker writes;
    # busy_timeout makes a second writer wait for the first instead of failing.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # IMMEDIATE takes the database's write lock at BEGIN: what the audit chain's appenders need,
    # since a deferred transaction that reads the head and then writes can lose the race.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")
