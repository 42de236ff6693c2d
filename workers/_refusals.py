"""Refused actions go into the audit log.

A Workflow Update validator that says no leaves nothing in Temporal's history (that is the point:
a flood of bad attempts cannot grow it), so the workflow cannot record the refusal itself. This
worker interceptor sees each refusal as the validator raises it and, through the sandbox's
extern-function door, writes it down on disk before the actor is answered; a task on the worker's
event loop appends it to the audit chain. Validators run only when an update first arrives, never
on replay; the update id keys the entry, so a refusal seen twice (a retried workflow task) is
recorded once.
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
from store import AuditStep, PendingSteps, Store

log = structlog.get_logger("safeshare.refusals")

_EXTERN = "safeshare_refusal"
# The longest wait between two tries at appending kept refusals while the store is down.
MAX_BACKOFF = 30.0


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
    """Each refusal is written down on disk first (`PendingSteps`), then appended to the audit
    chain; while the store is down the recorder keeps trying, and what a stopped worker could not
    append is appended when it starts again: a refusal is never lost to an outage."""

    def __init__(self, store: Store, pending: PendingSteps) -> None:
        self._store, self._pending = store, pending
        self._arrived = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        input.unsafe_extern_functions[_EXTERN] = self._report
        return _RefusalInbound

    def _report(self, refusal: Refusal) -> None:
        # Called on a workflow thread: write it down, then wake the event loop; never block on the store.
        now = datetime.now(UTC)
        self._pending.keep(request_id_of(refusal.workflow_id), AuditStep(
            step=f"refused-{refusal.update_id}", event="action_refused", actor=refusal.actor, at=now,
            data={"action": refusal.action, "reason": refusal.reason}, note=None, notices=[]))
        log.info("action_refused", workflow_id=refusal.workflow_id, action=refusal.action, actor=refusal.actor)
        self._loop.call_soon_threadsafe(self._arrived.set)

    async def run(self) -> None:
        """Append what is kept (first what an earlier run left); after a failure, again with backoff."""
        failures = 0
        while True:
            self._arrived.clear()
            try:
                await self._pending.flush(self._store, datetime.now(UTC))
                failures = 0
            except Exception as err:  # the store is down: keep it, and try again
                failures += 1
                log.warning("refusals_not_recorded_yet", kept=self._pending.count(), cause=type(err).__name__,
                            attempt=failures)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), min(2.0**failures, MAX_BACKOFF))
                continue
            await self._arrived.wait()

    async def drain(self) -> None:
        """At shutdown: append what is kept, or leave it for the next start."""
        try:
            await self._pending.flush(self._store, datetime.now(UTC))
        except Exception as err:
            log.warning("refusals_left_for_next_start", kept=self._pending.count(), cause=type(err).__name__)


@contextlib.asynccontextmanager
async def recording_refusals(store: Store, pending: PendingSteps) -> Any:
    recorder = RefusalRecorder(store, pending)
    try:
        async with beside(recorder.run()):
            yield recorder
    finally:
        await recorder.drain()
