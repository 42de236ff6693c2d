"""Decision records: one JSON body per request, rewritten as the request goes on (an upsert)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ._rows import AcceptedRecord
from ._sql import fetch
from ._tables import records, request_keys


class Records:
    @staticmethod
    async def put(conn: AsyncConnection, request_id: str, body: str, at: datetime) -> None:
        # Update first, insert if nothing was there: the same statement pair on every backend.
        updated = await conn.execute(
            records.update().where(records.c.request_id == request_id).values(body=body, updated_at=at)
        )
        if updated.rowcount == 0:
            await conn.execute(records.insert().values(request_id=request_id, body=body, updated_at=at))

    @staticmethod
    async def body(conn: AsyncConnection, request_id: str) -> str | None:
        return await conn.scalar(sa.select(records.c.body).where(records.c.request_id == request_id))

    @staticmethod
    async def accepted(conn: AsyncConnection, start: datetime, end: datetime) -> list[AcceptedRecord]:
        """The records of the requests accepted in [start, end), oldest first."""
        query = (
            sa.select(request_keys.c.request_id, request_keys.c.created_at.label("accepted_at"), records.c.body)
            .join(records, records.c.request_id == request_keys.c.request_id)
            .where(request_keys.c.created_at >= start, request_keys.c.created_at < end)
            .order_by(request_keys.c.created_at, request_keys.c.request_id)
        )
        return await fetch(conn, AcceptedRecord, query)
