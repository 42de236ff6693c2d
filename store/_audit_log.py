"""The audit chain in the database: appends under the head's lock, signed checkpoints, reads.

The rules (how an entry is hashed, a checkpoint signed, the chain verified) are in `_audit.py`;
this is where they meet the tables. Every method works on the connection it is given, so an
append shares its transaction with the step's note and notifications.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

import crypto

from . import _audit
from ._errors import StoreError
from ._rows import AuditEntry, AuditStep, ChainHead, Checkpoint
from ._sql import fetch, listing
from ._tables import audit, audit_checkpoints, audit_head

HEAD = audit_head.c.id == 1

# Built once: the append path runs them for every batch of steps.
_LOCK_HEAD = sa.select(audit_head.c.seq, audit_head.c.hash).where(HEAD).with_for_update()
_SET_HEAD = audit_head.update().where(HEAD)  # the new seq and hash are its parameters
_STORED_STEPS = sa.select(audit.c.step).where(
    audit.c.request_id == sa.bindparam("request_id"), audit.c.step.in_(sa.bindparam("steps", expanding=True)))


class AuditLog:
    def __init__(self, signing_key: crypto.SigningKey | None, checkpoint_every: int) -> None:
        self._key = signing_key
        self._every = checkpoint_every

    @staticmethod
    async def lock_head(conn: AsyncConnection) -> ChainHead:
        """The chain head, locked until the transaction ends, in this and every other process."""
        row = (await conn.execute(_LOCK_HEAD)).one()
        return ChainHead(seq=row.seq, hash=row.hash)

    @staticmethod
    async def stored_steps(conn: AsyncConnection, request_id: str, steps: Collection[str]) -> set[str]:
        """Which of the request's steps the chain already holds: one query for a whole batch."""
        if not steps:
            return set()
        return set((await conn.scalars(_STORED_STEPS, {"request_id": request_id, "steps": list(steps)})).all())

    async def append(
        self, conn: AsyncConnection, head: ChainHead, request_id: str, steps: Sequence[AuditStep], now: datetime
    ) -> ChainHead:
        """Write the steps' entries after the (locked) head, in order, and move the head once to the
        last; every entry whose seq is a multiple of the checkpoint interval is signed as it stood
        then. Returns the new head."""
        if not steps:
            return head
        rows: list[dict[str, Any]] = []
        signed: list[ChainHead] = []  # the checkpoints this batch reaches
        seq, prev_hash = head.seq, head.hash
        for s in steps:
            seq += 1
            digest = _audit.entry_hash(seq=seq, request_id=request_id, step=s.step, event=s.event, actor=s.actor,
                                       at=s.at, data=s.data, prev_hash=prev_hash)
            rows.append({"seq": seq, "request_id": request_id, "step": s.step, "event": s.event, "actor": s.actor,
                         "at": s.at, "data": json.dumps(s.data, sort_keys=True), "prev_hash": prev_hash,
                         "hash": digest})
            if self._key is not None and seq % self._every == 0:
                signed.append(ChainHead(seq=seq, hash=digest))
            prev_hash = digest
        await conn.execute(audit.insert(), rows)
        new_head = ChainHead(seq=seq, hash=prev_hash)
        await conn.execute(_SET_HEAD, {"seq": new_head.seq, "hash": new_head.hash})
        for checkpoint in signed:
            await self._sign(conn, checkpoint, now)
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
