"""Refused actions go into the audit log.

A Workflow Update validator that says no leaves nothing in Temporal's history (that is the point:
a flood of bad attempts cannot grow it), so the workflow cannot record the refusal itself. This
worker interceptor sees each refusal as the validator raises it and hands it, through the
sandbox's extern-function door, to a task on the worker's event loop that appends it to the
audit chain. Validators run only when an update first arrives, never on replay; the update id
keys the entry, so a refusal seen twice (a retried workflow task) is recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from temporalio import workflow
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from activities import beside
from schemas import request_id_of
from store import Store

log = structlog.get_logger("safeshare.refusals")

_EXTERN = "safeshare_refusal"


@dataclass(frozen=True)
class Refusal:
    workflow_id: str
    update_id: str
    action: str
    actor: str
    reason: str


class _RefusalInbound(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        try:
            super().handle_update_validator(input)
        except ApplicationError as err:
            if err.type == "Refused":
                arg = input.args[0] if input.args else None
                actor = getattr(arg, "signer", None) or getattr(arg, "by", None) or "unknown"
                workflow.extern_functions()[_EXTERN](Refusal(
                    workflow.info().workflow_id, input.id, input.update, str(actor), err.message))
            raise


class RefusalRecorder(Interceptor):
    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: asyncio.Queue[Refusal] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        input.unsafe_extern_functions[_EXTERN] = self._report
        return _RefusalInbound

    def _report(self, refusal: Refusal) -> None:
        # Called on a workflow thread: hand over to the event loop, never block the workflow.
        self._loop.call_soon_threadsafe(self._queue.put_nowait, refusal)

    async def run(self) -> None:
        while True:
            refusal = await self._queue.get()
            for attempt in range(5):
                try:
                    await self._record(refusal)
                    break
                except Exception:  # the store is down: try again shortly, then give up loudly
                    log.warning("refusal_not_recorded", workflow_id=refusal.workflow_id, attempt=attempt)
                    await asyncio.sleep(2**attempt)

    async def _record(self, r: Refusal) -> None:
        now = datetime.now(UTC)
        await self._store.record_step(
            request_id=request_id_of(r.workflow_id), step=f"refused-{r.update_id}",
            event="action_refused", actor=r.actor, at=now,
            data={"action": r.action, "reason": r.reason}, note=None, notices=[], now=now,
        )
        log.info("action_refused", workflow_id=r.workflow_id, action=r.action, actor=r.actor)

    async def drain(self) -> None:
        """Record what is queued (at shutdown)."""
        while not self._queue.empty():
            await self._record(self._queue.get_nowait())


@contextlib.asynccontextmanager
async def recording_refusals(store: Store) -> Any:
    recorder = RefusalRecorder(store)
    try:
        async with beside(recorder.run()):
            yield recorder
    finally:
        with contextlib.suppress(Exception):
            await recorder.drain()
