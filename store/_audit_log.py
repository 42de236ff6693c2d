"""The audit chain in the database: appends under the head's lock, signed checkpoints, reads.

The rules (how an entry is hashed, a checkpoint signed, the chain verified) are in `_audit.py`;
this is where they meet the tables. Every method works on the connection it is given, so an
append shares its transaction with the step's note and notifications.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

import crypto

from . import _audit
from ._errors import StoreError
from ._rows import AuditEntry, AuditStep, ChainHead, Checkpoint
from ._sql import fetch, listing
from ._tables import audit, audit_checkpoints, audit_head

HEAD = audit_head.c.id == 1


class AuditLog:
    def __init__(self, signing_key: crypto.SigningKey | None, checkpoint_every: int) -> None:
        self._key = signing_key
        self._every = checkpoint_every

    @staticmethod
    async def lock_head(conn: AsyncConnection) -> ChainHead:
        """The chain head, locked until the transaction ends, in this and every other process."""
        row = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(HEAD).with_for_update())).one()
        return ChainHead(seq=row.seq, hash=row.hash)

    @staticmethod
    async def has_step(conn: AsyncConnection, request_id: str, step: str) -> bool:
        found = await conn.scalar(sa.select(audit.c.seq).where(audit.c.request_id == request_id, audit.c.step == step))
        return found is not None

    async def append(
        self, conn: AsyncConnection, head: ChainHead, request_id: str, s: AuditStep, now: datetime
    ) -> ChainHead:
        """Write the step's entry after the (locked) head and move the head; returns the new head."""
        seq, prev_hash = head.seq + 1, head.hash
        digest = _audit.entry_hash(seq=seq, request_id=request_id, step=s.step, event=s.event, actor=s.actor,
                                   at=s.at, data=s.data, prev_hash=prev_hash)
        await conn.execute(audit.insert().values(
            seq=seq, request_id=request_id, step=s.step, event=s.event, actor=s.actor, at=s.at,
            data=json.dumps(s.data, sort_keys=True), prev_hash=prev_hash, hash=digest,
        ))
        await conn.execute(audit_head.update().where(HEAD).values(seq=seq, hash=digest))
        new_head = ChainHead(seq=seq, hash=digest)
        if self._key is not None and seq % self._every == 0:
            await self._sign(conn, new_head, now)
        return new_head

    async def checkpoint(self, conn: AsyncConnection, now: datetime) -> int:
        """Sign the chain head now; returns its seq (0: an empty chain, nothing signed)."""
        if self._key is None:
            raise StoreError("no audit signing key: checkpoints need the deployment's key")
        head = await self.lock_head(conn)
        if head.seq:
            await self._sign(conn, head, now)
        return head.seq

    async def _sign(self, conn: AsyncConnection, head: ChainHead, at: datetime) -> None:
        assert self._key is not None
        signature = self._key.sign(_audit.checkpoint_message(head.seq, head.hash, at))
        exists = await conn.scalar(sa.select(audit_checkpoints.c.seq).where(audit_checkpoints.c.seq == head.seq))
        if exists is None:
            await conn.execute(audit_checkpoints.insert().values(seq=head.seq, hash=head.hash, at=at,
                                                                 signature=signature))

    @staticmethod
    async def trail(conn: AsyncConnection, request_id: str | None = None) -> list[AuditEntry]:
        return await fetch(conn, AuditEntry, listing(audit, audit.c.seq, request_id))

    @staticmethod
    async def verify(conn: AsyncConnection, public_key_b64: str | None, batch: int = 1000) -> _audit.AuditReport:
        """Recompute the whole chain, read in pages, and check every checkpoint's signature."""
        head = (await conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(HEAD))).first()
        checkpoints = await fetch(conn, Checkpoint, sa.select(audit_checkpoints).order_by(audit_checkpoints.c.seq))
        entries: list[AuditEntry] = []
        while True:
            query = sa.select(audit).order_by(audit.c.seq).limit(batch)
            if entries:
                query = query.where(audit.c.seq > entries[-1].seq)
            page = await fetch(conn, AuditEntry, query)
            entries.extend(page)
            if len(page) < batch:
                break
        return _audit.verify_chain(entries, checkpoints, ChainHead(seq=head.seq, hash=head.hash) if head else None,
                                   public_key_b64)
