"""The store: SQLAlchemy Core over SQLite (default) or any async URL.

Content is encrypted under a per-request data key, itself wrapped by the deployment's store key.
Destroying the data key and the ciphertext at retention expiry is what deletion means here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

import crypto


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
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("dedupe_key", sa.String(200), nullable=False, unique=True),
    sa.Column("request_id", sa.String(64), nullable=False, index=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("to_contact", sa.String(64), nullable=False),
    sa.Column("address", sa.String(254), nullable=False),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("body", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("sent_at", UTCDateTime(), nullable=True),
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
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
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

GENESIS = "0" * 64


class StoreError(Exception):
    """Base of the store's errors."""


class ContentDestroyed(StoreError):
    def __init__(self, request_id: str) -> None:
        super().__init__(f"request {request_id}: content destroyed at retention expiry")


class NotFound(StoreError):
    def __init__(self, what: str, request_id: str) -> None:
        super().__init__(f"request {request_id}: no {what}")


@dataclass(frozen=True)
class OutgoingNotice:
    dedupe_key: str
    kind: str
    to_contact: str
    address: str
    subject: str
    body: str


def audit_hash(prev_hash: str, entry: dict[str, Any]) -> str:
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev_hash + canonical).encode()).hexdigest()


class Store:
    def __init__(self, engine: AsyncEngine, store_key: bytes) -> None:
        self._engine = engine
        self._store_key = store_key
        # One writer at a time keeps the audit chain linear within this process.
        self._audit_lock = asyncio.Lock()

    @classmethod
    async def open(cls, url: str, store_key: bytes) -> Store:
        engine = create_async_engine(url)
        if engine.dialect.name == "sqlite":
            event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        return cls(engine, store_key)

    async def close(self) -> None:
        await self._engine.dispose()

    # --- content -------------------------------------------------------------------------------

    async def put_request(self, request_id: str, plaintext: bytes, now: datetime) -> bool:
        """Store a request's content under a new data key. False if it was already stored."""
        data_key = crypto.new_key()
        aad = request_id.encode()
        async with self._engine.begin() as conn:
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
                sa.select(request_keys.c.wrapped_key).where(request_keys.c.request_id == request_id)
            )
        ).first()
        if row is None:
            raise NotFound("content", request_id)
        if row.wrapped_key is None:
            raise ContentDestroyed(request_id)
        return crypto.decrypt(self._store_key, row.wrapped_key, b"dek|" + request_id.encode())

    async def notes_for(self, request_id: str) -> dict[str, str]:
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
        async with self._audit_lock, self._engine.begin() as conn:
            done = await conn.scalar(
                sa.select(audit.c.seq).where(audit.c.request_id == request_id, audit.c.step == step)
            )
            if done is not None:
                return False
            prev = await conn.scalar(sa.select(audit.c.hash).order_by(audit.c.seq.desc()).limit(1))
            prev_hash = prev or GENESIS
            entry = {"request_id": request_id, "step": step, "event": event, "actor": actor,
                     "at": at.isoformat(), "data": data}
            await conn.execute(
                audit.insert().values(
                    request_id=request_id, step=step, event=event, actor=actor, at=at,
                    data=json.dumps(data, sort_keys=True), prev_hash=prev_hash,
                    hash=audit_hash(prev_hash, entry),
                )
            )
            if note is not None:
                data_key = await self._data_key(conn, request_id)
                await conn.execute(
                    notes.insert().values(
                        request_id=request_id, step=step,
                        ciphertext=crypto.encrypt(data_key, note.encode(), request_id.encode()),
                    )
                )
            for n in notices:
                await conn.execute(
                    outbox.insert().values(
                        dedupe_key=n.dedupe_key, request_id=request_id, kind=n.kind,
                        to_contact=n.to_contact, address=n.address, subject=n.subject,
                        body=n.body, created_at=now,
                    )
                )
        return True

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
            async with self._engine.begin() as conn:
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
        async with self._engine.begin() as conn:
            await conn.execute(
                inbox.update()
                .where(inbox.c.request_id == request_id, inbox.c.acknowledged_at.is_(None))
                .values(acknowledged_at=at)
            )

    # --- records -------------------------------------------------------------------------------

    async def put_record(self, request_id: str, body: str, at: datetime) -> None:
        async with self._engine.begin() as conn:
            updated = await conn.execute(
                records.update().where(records.c.request_id == request_id).values(body=body, updated_at=at)
            )
            if updated.rowcount == 0:
                await conn.execute(records.insert().values(request_id=request_id, body=body, updated_at=at))

    async def record(self, request_id: str) -> str | None:
        async with self._engine.connect() as conn:
            return await conn.scalar(sa.select(records.c.body).where(records.c.request_id == request_id))

    # --- deletion ------------------------------------------------------------------------------

    async def destroy(self, request_id: str, at: datetime) -> None:
        """Crypto-shred: the data key goes, and with it every ciphertext made under it."""
        async with self._engine.begin() as conn:
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


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the CLI read while a worker writes; busy_timeout waits for a writer instead of failing.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
