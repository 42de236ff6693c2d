"""The outbox: notifications queued with the step that causes them, then marked sent or refused."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncConnection

from schemas import Notification

from ._rows import OutboxEntry
from ._sql import fetch, listing, once
from ._tables import outbox


class Outbox:
    @staticmethod
    async def queue(
        conn: AsyncConnection, by_step: Iterable[tuple[str, list[Notification]]], now: datetime
    ) -> None:
        """Each step's notifications, unsent, in one statement: a notification's fields are the
        table's columns."""
        rows = [{**asdict(n), "step": step, "created_at": now} for step, notices in by_step for n in notices]
        if rows:
            await conn.execute(outbox.insert(), rows)

    @staticmethod
    async def entries(conn: AsyncConnection, request_id: str | None = None) -> list[OutboxEntry]:
        return await fetch(conn, OutboxEntry, listing(outbox, outbox.c.id, request_id))

    @staticmethod
    async def unsent(conn: AsyncConnection, request_id: str, step: str) -> list[OutboxEntry]:
        """A step's notifications not yet sent, nor refused by their receiver."""
        pending = listing(outbox, outbox.c.id, request_id).where(
            outbox.c.step == step, outbox.c.sent_at.is_(None), outbox.c.failed_at.is_(None))
        return await fetch(conn, OutboxEntry, pending)

    @staticmethod
    async def mark_sent(conn: AsyncConnection, dedupe_keys: list[str], at: datetime) -> None:
        """Several notifications marked sent in one statement (a step's, once its send is done)."""
        if dedupe_keys:
            await conn.execute(once(outbox, outbox.c.dedupe_key.in_(dedupe_keys), "sent_at", at))

    @staticmethod
    async def mark_failed(conn: AsyncConnection, dedupe_key: str, at: datetime, failure: str) -> None:
        """The receiver refused it (e.g. HTTP 4xx): retrying will not help, so it is not retried."""
        await conn.execute(outbox.update().where(outbox.c.dedupe_key == dedupe_key).values(
            failed_at=at, failure=failure[:200]))
