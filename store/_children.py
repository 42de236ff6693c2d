"""The child index: requests about one child, by the keyed hash of its identifier."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from ._rows import ChildRequest
from ._sql import fetch
from ._tables import child_index


class ChildIndex:
    @staticmethod
    async def add(
        conn: AsyncConnection, request_id: str, child_key: str, disclosing: str, recipient: str, at: datetime
    ) -> None:
        """Once per request: a retry of intake finds the row there and leaves it."""
        if await conn.scalar(sa.select(child_index.c.request_id).where(child_index.c.request_id == request_id)):
            return
        await conn.execute(child_index.insert().values(
            request_id=request_id, child_key=child_key, disclosing_agency=disclosing, recipient_agency=recipient,
            accepted_at=at))

    @staticmethod
    async def find(conn: AsyncConnection, child_key: str, agency: str) -> list[ChildRequest]:
        """The requests about the child that the agency sent or received, oldest first."""
        query = (
            sa.select(child_index.c.request_id, child_index.c.accepted_at, child_index.c.disclosing_agency,
                      child_index.c.recipient_agency)
            .where(child_index.c.child_key == child_key,
                   sa.or_(child_index.c.disclosing_agency == agency, child_index.c.recipient_agency == agency))
            .order_by(child_index.c.accepted_at, child_index.c.request_id)
        )
        return await fetch(conn, ChildRequest, query)

    @staticmethod
    async def shred(conn: AsyncConnection, request_id: str) -> None:
        """At deletion the link to the child goes with the content."""
        await conn.execute(child_index.delete().where(child_index.c.request_id == request_id))
