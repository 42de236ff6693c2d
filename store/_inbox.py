"""The inbox: sealed bundles delivered to recipient agencies, pushed, acknowledged, destroyed."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ._rows import Delivery, InboxEntry
from ._sql import fetch, once
from ._tables import inbox


class Inbox:
    @staticmethod
    async def insert(conn: AsyncConnection, delivery: Delivery) -> None:
        """Raises IntegrityError if the request was delivered already."""
        await conn.execute(inbox.insert().values(**dataclasses.asdict(delivery)))

    @staticmethod
    async def delivery(conn: AsyncConnection, request_id: str) -> Delivery | None:
        row = (await conn.execute(sa.select(inbox).where(inbox.c.request_id == request_id))).first()
        return Delivery(**row._mapping) if row else None

    @staticmethod
    async def entries(conn: AsyncConnection, agency: str) -> list[InboxEntry]:
        query = (
            sa.select(inbox.c.request_id, inbox.c.sender, inbox.c.bundle_sha256,
                      inbox.c.delivered_at, inbox.c.acknowledged_at, inbox.c.destroyed_at,
                      inbox.c.downloaded_at, inbox.c.recalled_at)
            .where(inbox.c.recipient == agency)
            .order_by(inbox.c.delivered_at)
        )
        return await fetch(conn, InboxEntry, query)

    @staticmethod
    async def mark(
        conn: AsyncConnection, request_id: str,
        stamp: Literal["pushed_at", "acknowledged_at", "downloaded_at"], at: datetime,
    ) -> None:
        """Note when the bundle was pushed, acknowledged or first downloaded: once."""
        await conn.execute(once(inbox, inbox.c.request_id == request_id, stamp, at))

    @staticmethod
    async def recall(conn: AsyncConnection, request_id: str, at: datetime) -> None:
        """The discloser takes the bundle back: out of the inbox, whether or not it was downloaded."""
        await conn.execute(once(inbox, inbox.c.request_id == request_id, "recalled_at", at, bundle=None))

    @staticmethod
    async def shred(conn: AsyncConnection, request_id: str, at: datetime) -> None:
        await conn.execute(once(inbox, inbox.c.request_id == request_id, "destroyed_at", at, bundle=None))
