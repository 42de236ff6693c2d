"""The store's one door: SQLAlchemy Core over SQLite (default) or PostgreSQL.

Each method is one transaction; the repositories it composes (`_content`, `_audit_log`,
`_outbox`, `_inbox`, `_records`) say how their tables are read and written on the connection
they are given. Where several must change together (a stage's steps, a deletion), it is here.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Concatenate, ParamSpec, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

import crypto
import database
from schemas import Notification, Recalled

from . import _migrate
from ._audit import AuditReport
from ._audit_log import AuditLog
from ._children import ChildIndex
from ._content import Content
from ._errors import NotFound
from ._inbox import Inbox
from ._outbox import Outbox
from ._records import Records
from ._rows import AcceptedRecord, AuditEntry, AuditStep, ChildRequest, Delivery, InboxEntry, OutboxEntry
from ._tables import audit, child_index, inbox, outbox, records, request_keys

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

    async def index_child(
        self, request_id: str, child_key: str, *, disclosing: str, recipient: str, at: datetime
    ) -> None:
        """Record the keyed hash of the request's child identifier (`crypto.child_index_key`), once."""
        await self._write(ChildIndex.add, request_id, child_key, disclosing, recipient, at)

    async def requests_about(self, child_key: str, agency: str) -> list[ChildRequest]:
        """The requests about one child (by its identifier's keyed hash) that the agency sent or received."""
        return await self._read(ChildIndex.find, child_key, agency)

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

    async def mark_sent(self, dedupe_keys: list[str], at: datetime) -> None:
        """Notifications (by their dedupe keys) marked sent, in one statement."""
        await self._write(self._outbox.mark_sent, dedupe_keys, at)

    async def mark_failed(self, dedupe_key: str, at: datetime, failure: str) -> None:
        """The receiver refused it (e.g. HTTP 4xx): retrying will not help, so it is not retried."""
        await self._write(self._outbox.mark_failed, dedupe_key, at, failure)

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

    async def download(self, request_id: str, recipient: str, by: str, at: datetime) -> Delivery | None:
        """The recipient's bundle, its download audited (who, when) in the same transaction; None if
        the request delivered nothing to `recipient`. A bundle destroyed or recalled comes back
        without its bytes, and nothing is audited: nothing was downloaded."""
        async with self._writer.begin() as conn:
            head = await self._audit.lock_head(conn)  # first, as every appender locks it
            row = await self._inbox.delivery(conn, request_id)
            if row is None or row.recipient != recipient or row.bundle is None:
                return None if row is None or row.recipient != recipient else row
            await self._inbox.mark(conn, request_id, "downloaded_at", at)
            step = AuditStep(step=f"downloaded-{uuid.uuid4().hex}", event="bundle_downloaded", actor=by, at=at,
                             data={"recipient": recipient}, note=None, notices=[])
            await self._audit.append(conn, head, request_id, [step], at)
        return row

    async def recall(self, request_id: str, at: datetime) -> Recalled:
        """Take the bundle out of the recipient's inbox; whether they had downloaded it first, read
        in the same transaction as downloads mark it, so the answer cannot race one."""
        async with self._writer.begin() as conn:
            await self._audit.lock_head(conn)  # serialises with `download`, which holds it too
            row = await self._inbox.delivery(conn, request_id)
            if row is None:
                raise NotFound(f"request {request_id}: nothing was delivered")
            await self._inbox.recall(conn, request_id, at)
        return Recalled(downloaded=row.downloaded_at is not None, recalled_at=row.recalled_at or at)

    async def mark_pushed(self, request_id: str, at: datetime) -> None:
        await self._write(self._inbox.mark, request_id, "pushed_at", at)

    async def inbox_for(self, agency: str) -> list[InboxEntry]:
        return await self._read(self._inbox.entries, agency)

    # --- records -------------------------------------------------------------------------------

    async def record(self, request_id: str) -> str | None:
        return await self._read(self._records.body, request_id)

    async def records_accepted(self, start: datetime, end: datetime) -> list[AcceptedRecord]:
        """The records of the requests accepted in [start, end), oldest first."""
        return await self._read(self._records.accepted, start, end)

    # --- deletion ------------------------------------------------------------------------------

    async def destroy(self, request_id: str, at: datetime) -> None:
        """Crypto-shred: the data key goes, and with it every ciphertext made under it; the bundle too."""
        async with self._writer.begin() as conn:
            await self._content.shred(conn, request_id, at)
            await self._inbox.shred(conn, request_id, at)
            await ChildIndex.shred(conn, request_id)

    async def has_request(self, request_id: str) -> bool:
        async with self._engine.connect() as conn:
            for table in (request_keys, records, inbox, outbox, audit, child_index):
                if await conn.scalar(sa.select(table.c.request_id).where(table.c.request_id == request_id).limit(1)):
                    return True
        return False
