"""Disposal at retention expiry: the content crypto-shredded, then the request's history key."""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from temporalio import activity

import crypto
from schemas import RequestAt, Tombstone, workflow_id
from store import Store

log = structlog.get_logger("safeshare.activities")


@dataclass(frozen=True)
class DisposalActivities:
    store: Store
    history_keys: crypto.HistoryKeys

    @activity.defn
    async def dispose(self, inp: RequestAt) -> Tombstone:
        """Destroy the content (its data key, and with it every note, and the bundle), then retire
        the request's history key, so the run the workflow continues as next is encrypted under the
        deployment's key alone.

        Two side effects in one activity: the workflow continues as new once both are done, in this
        order, and never after only one. Each is repeatable, so a retry redoes whichever did not
        finish. The run that follows destroys the retired key (`shred_history_key`).
        """
        await self.store.destroy(inp.request_id, inp.at)
        log.info("content_destroyed", request_id=inp.request_id)
        await self.history_keys.retire(workflow_id(inp.request_id))
        return Tombstone(request_id=inp.request_id, destroyed_at=inp.at)

    @activity.defn
    async def shred_history_key(self, inp: RequestAt) -> None:
        """After this, no copy of the request's earlier Temporal history can be decrypted."""
        await self.history_keys.destroy(workflow_id(inp.request_id))
        log.info("history_key_destroyed", request_id=inp.request_id)
