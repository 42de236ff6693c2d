"""The store's one door: SQLAlchemy Core over SQLite (default) or PostgreSQL.

Each method is one transaction; the repositories it composes (`_content`, `_audit_log`,
`_outbox`, `_inbox`, `_records`) say how their tables are read and written on the connection
they are given. Where several must change together (a stage's steps, a deletion), it is here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import crypto
import database
from schemas import Notification

from . import _migrate
from ._audit import AuditReport
from ._audit_log import AuditLog
from ._content import Content
from ._inbox import Inbox
from ._outbox import Outbox
from ._records import Records
from ._rows import AcceptedRecord, AuditEntry, AuditStep, Delivery, InboxEntry, OutboxEntry
from ._tables import audit, inbox, outbox, records, request_keys
from ._tokens import UsedTokens

P = ParamSpec("P")
T = TypeVar("T")
Op = Callable[Concatenate[AsyncConnection, P], Awaitable[T]]


class Store:
    def __init__(
        self, engine: AsyncEngine, store_key: bytes, *,
        audit_key: crypto.SigningKey | None = None, checkpoint_every: int = 100,
    ) -> None:
        self._engine = engine
        self._writer = database.writer(engine)
        self._content = Content(store_key)
        self._audit = AuditLog(audit_key, checkpoint_every)
        self._outbox, self._inbox, self._records = Outbox(), Inbox(), Records()
        self._tokens = UsedTokens()

    @classmethod
    async def open(
        cls, url: str, store_key: bytes, *, audit_key: crypto.SigningKey | None = None,
        checkpoint_every: int = 100, upgrade: bool | None = None,
    ) -> Store:
        """Open the store. SQLite (the one-machine backend) is upgraded to the current schema on
        open, so a fresh clone needs no manual step; other databases must be upgraded with
        `safeshare db upgrade` first (a deployment step), and opening refuses until they are."""
        engine = database.make_engine(url)
        try:
            await _migrate.prepare(engine, migrate=engine.dialect.name == "sqlite" if upgrade is None else upgrade)
        except Exception:
            await engine.dispose()
            raise
        return cls(engine, store_key, audit_key=audit_key, checkpoint_every=checkpoint_every)

    async def close(self) -> None:
        await self._engine.dispose()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    async def _read(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._engine.connect() as conn:
            return await op(conn, *args, **kwargs)

    async def _write(self, op: Op[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        async with self._writer.begin() as conn:
            return await op(conn, *args, **kwargs)

    # --- content -------------------------------------------------------------------------------

    async def put_request(self, request_id: str, plaintext: bytes, now: datetime) -> bool:
        """Store a request's content under a new data key. False if it was already stored."""
        return await self._write(self._content.create, request_id, plaintext, now)

    async def get_request(self, request_id: str) -> bytes:
        return await self._read(self._content.read, request_id)

    async def notes_for(self, request_id: str) -> dict[str, str]:
        """Each audited step's note (reasons, challenge text), by step; ContentDestroyed once shredded."""
        return await self._read(self._content.notes_for, request_id)

    async def accepted_at(self, request_id: str) -> datetime | None:
        return await self._read(self._content.accepted_at, request_id)

    # --- audited steps -------------------------------------------------------------------------

    async def record_step(
        self, *, request_id: str, step: str, event: str, actor: str, at: datetime, data: dict[str, Any],
        note: str | None, notices: list[Notification], now: datetime,
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
        async with self._writer.begin() as conn:
            # Locked first, in every process: appenders anywhere keep one linear chain.
            head = await self._audit.lock_head(conn)
            stored = await self._audit.stored_steps(conn, request_id, {s.step for s in steps})
            new: list[AuditStep] = []
            for s in steps:  # in order; a step already stored, or twice in the batch, is appended once
                if s.step not in stored:
                    stored.add(s.step)
                    new.append(s)
            await self._audit.append(conn, head, request_id, new, now)
            await self._content.add_notes(conn, request_id, [(s.step, s.note) for s in new if s.note is not None])
            await self._outbox.queue(conn, ((s.step, s.notices) for s in new), now)
            if acknowledged_at is not None:
                await self._inbox.mark(conn, request_id, "acknowledged_at", acknowledged_at)
            if record is not None:
                await self._records.put(conn, request_id, *record)
        return [s.step for s in new]

    async def checkpoint(self, now: datetime) -> int:
        """Sign the chain head now (e.g. at the end of a day); returns its seq (0: empty chain)."""
        return await self._write(self._audit.checkpoint, now)

    async def verify_audit(self, public_key_b64: str | None, batch: int = 1000) -> AuditReport:
        """Recompute the whole chain, in pages, and check every checkpoint's signature."""
        return await self._read(self._audit.verify, public_key_b64, batch)

    async def audit_trail(self, request_id: str | None = None) -> list[AuditEntry]:
        return await self._read(self._audit.trail, request_id)

    # --- outbox --------------------------------------------------------------------------------

    async def outbox_for(self, request_id: str | None = None) -> list[OutboxEntry]:
        return await self._read(self._outbox.entries, request_id)

    async def unsent(self, request_id: str, step: str) -> list[OutboxEntry]:
        """A step's notifications not yet sent, nor refused by their receiver."""
        return await self._read(self._outbox.unsent, request_id, step)

    async def mark_sent(self, outbox_id: int, at: datetime) -> None:
        await self._write(self._outbox.mark_sent, outbox_id, at)

    async def mark_failed(self, outbox_id: int, at: datetime, failure: str) -> None:
        """The receiver refused it (e.g. HTTP 4xx): retrying will not help, so it is not retried."""
        await self._write(self._outbox.mark_failed, outbox_id, at, failure)

    # --- inbox ---------------------------------------------------------------------------------

    async def deliver(
        self, *, request_id: str, sender: str, recipient: str, bundle: bytes,
        withheld_identities: int, at: datetime,
    ) -> Delivery:
        """Put the bundle in the recipient's inbox once; a second call returns the first delivery."""
        delivery = Delivery(
            request_id=request_id, sender=sender, recipient=recipient, bundle=bundle,
            bundle_sha256=hashlib.sha256(bundle).hexdigest(), withheld_identities=withheld_identities,
            delivered_at=at,
        )
        try:
            await self._write(self._inbox.insert, delivery)
        except IntegrityError:
            existing = await self.delivery(request_id)
            assert existing is not None  # the conflict was this row
            return existing
        return delivery

    async def delivery(self, request_id: str) -> Delivery | None:
        return await self._read(self._inbox.delivery, request_id)

    async def mark_pushed(self, request_id: str, at: datetime) -> None:
        await self._write(self._inbox.mark, request_id, "pushed_at", at)

    async def inbox_for(self, agency: str) -> list[InboxEntry]:
        return await self._read(self._inbox.entries, agency)

    # --- records -------------------------------------------------------------------------------

    async def put_record(self, request_id: str, body: str, at: datetime) -> None:
        await self._write(self._records.put, request_id, body, at)

    async def record(self, request_id: str) -> str | None:
        return await self._read(self._records.body, request_id)

    async def records_accepted(self, start: datetime, end: datetime) -> list[AcceptedRecord]:
        """The records of the requests accepted in [start, end), oldest first."""
        return await self._read(self._records.accepted, start, end)

    # --- the service's callers ------------------------------------------------------------------

    async def use_token(self, issuer: str, jti: str, expires_at: datetime, now: datetime) -> bool:
        """Accept a token id once across every service replica; False when it was used before."""
        return await self._write(self._tokens.use, issuer, jti, expires_at, now)

    # --- deletion ------------------------------------------------------------------------------

    async def destroy(self, request_id: str, at: datetime) -> None:
        """Crypto-shred: the data key goes, and with it every ciphertext made under it; the bundle too."""
        async with self._writer.begin() as conn:
            await self._content.shred(conn, request_id, at)
            await self._inbox.shred(conn, request_id, at)

    async def has_request(self, request_id: str) -> bool:
        async with self._engine.connect() as conn:
            for table in (request_keys, records, inbox, outbox, audit):
                if await conn.scalar(sa.select(table.c.request_id).where(table.c.request_id == request_id).limit(1)):
                    return True
        return False
