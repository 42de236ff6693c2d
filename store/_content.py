"""Request content and notes, encrypted under the request's own data key.

The data key is wrapped by the deployment's store key. Destroying the wrapped key and the
ciphertext at retention expiry is what deletion means here (crypto-shredding).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

import crypto

from ._errors import ContentDestroyed, NotFound
from ._sql import once
from ._tables import notes, request_content, request_keys


def _wrap_aad(request_id: str) -> bytes:
    # A wrapped data key opens only as the key of the request it was made for.
    return b"dek|" + request_id.encode()


class Content:
    def __init__(self, store_key: bytes) -> None:
        self._store_key = store_key

    async def create(self, conn: AsyncConnection, request_id: str, plaintext: bytes, now: datetime) -> bool:
        """Store a request's content under a new data key. False if it was already stored."""
        exists = await conn.scalar(sa.select(request_keys.c.request_id).where(request_keys.c.request_id == request_id))
        if exists:
            return False
        data_key = crypto.new_key()
        await conn.execute(request_keys.insert().values(
            request_id=request_id, wrapped_key=crypto.encrypt(self._store_key, data_key, _wrap_aad(request_id)),
            created_at=now,
        ))
        await conn.execute(request_content.insert().values(
            request_id=request_id, ciphertext=crypto.encrypt(data_key, plaintext, request_id.encode()),
        ))
        return True

    async def read(self, conn: AsyncConnection, request_id: str) -> bytes:
        data_key = await self._data_key(conn, request_id)
        blob = await conn.scalar(
            sa.select(request_content.c.ciphertext).where(request_content.c.request_id == request_id)
        )
        if blob is None:
            raise ContentDestroyed(request_id)
        return crypto.decrypt(data_key, blob, request_id.encode())

    async def add_notes(self, conn: AsyncConnection, request_id: str, step_notes: list[tuple[str, str]]) -> None:
        """The steps' notes, (step, note) each, encrypted under the request's data key (read once)."""
        if not step_notes:
            return
        data_key = await self._data_key(conn, request_id)
        aad = request_id.encode()
        await conn.execute(notes.insert(), [
            {"request_id": request_id, "step": step, "ciphertext": crypto.encrypt(data_key, note.encode(), aad)}
            for step, note in step_notes
        ])

    async def notes_for(self, conn: AsyncConnection, request_id: str) -> dict[str, str]:
        """Each audited step's note (reasons, challenge text), by step; ContentDestroyed once shredded."""
        data_key = await self._data_key(conn, request_id)
        rows = await conn.execute(sa.select(notes.c.step, notes.c.ciphertext).where(notes.c.request_id == request_id))
        return {r.step: crypto.decrypt(data_key, r.ciphertext, request_id.encode()).decode() for r in rows}

    async def _data_key(self, conn: AsyncConnection, request_id: str) -> bytes:
        row = (await conn.execute(
            sa.select(request_keys.c.wrapped_key, request_keys.c.destroyed_at)
            .where(request_keys.c.request_id == request_id)
        )).first()
        if row is None:
            raise NotFound("content", request_id)
        if row.wrapped_key is None:
            raise ContentDestroyed(request_id, row.destroyed_at)
        return crypto.decrypt(self._store_key, row.wrapped_key, _wrap_aad(request_id))

    @staticmethod
    async def accepted_at(conn: AsyncConnection, request_id: str) -> datetime | None:
        return await conn.scalar(sa.select(request_keys.c.created_at).where(request_keys.c.request_id == request_id))

    @staticmethod
    async def shred(conn: AsyncConnection, request_id: str, at: datetime) -> None:
        """The data key goes, and with it every ciphertext made under it; the ciphertext goes too."""
        await conn.execute(once(request_keys, request_keys.c.request_id == request_id, "destroyed_at", at,
                                wrapped_key=None))
        await conn.execute(request_content.delete().where(request_content.c.request_id == request_id))
        await conn.execute(notes.delete().where(notes.c.request_id == request_id))
