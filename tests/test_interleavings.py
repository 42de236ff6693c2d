"""Updates racing the workflow's own steps, each interleaving chosen by the test, on the time-skipping
server with stub activities (`tests/stub_activities.py`).

What must hold however they interleave (workflows/_steps.py): every audited step is stored exactly
once, in order; an update is answered only once its step is stored; the process ends where the
rules say. Before, only the random-kill crash test (tests/test_crash.py) reached these orders.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from clients import sign
from schemas import (
    WORKFLOW_TYPE,
    AckAction,
    ConsentAction,
    DecisionAction,
    HoldAction,
    OverrideAction,
    QueryName,
    SearchKey,
    ShareInput,
    Status,
    UpdateName,
)
from workers import Pace, eventually

from .conftest import example
from .stub_activities import (
    KEYS,
    POLICY,
    Gate,
    Stubs,
    answered_after_stored,
    assert_each_step_stored_once_in_order,
    intake_snapshot,
    stub_worker,
)

SECOND = timedelta(seconds=1)


@dataclass
class Run:
    """One share request on the stub worker, and its actors."""

    env: WorkflowEnvironment
    stubs: Stubs
    handle: WorkflowHandle  # its first run
    request_id: str
    digest: str  # the request's content digest, which signatures bind
    task_queue: str
    worker: contextlib.AsyncExitStack

    @property
    def client(self) -> Client:
        return self.env.client

    async def act(self, update: str, action: Any, update_id: str | None = None) -> Status:
        if getattr(action, "signature", "") is None:  # signed by its actor now, on the server's clock
            action = sign(action, self.request_id, self.digest, KEYS[action.signer], await self.env.get_current_time())
        latest = self.client.get_workflow_handle(self.handle.id)
        return await latest.execute_update(update, action, id=update_id or str(uuid.uuid4()), result_type=Status)

    def acting(self, update: str, action: Any, update_id: str) -> asyncio.Task[Status]:
        return asyncio.create_task(self.act(update, action, update_id))

    async def shown(self, check: Callable[[str | None], bool]) -> None:
        """Wait until the stage operators see (the search attribute, written as a workflow task
        completes) satisfies `check`: actors act on it, never on a query answered mid-task."""
        await eventually(f"request {self.request_id}: the stage shown", self._stage, check, timeout=15,
                         pace=Pace(first=0.01, most=0.1))

    async def _stage(self) -> str | None:
        return (await self.handle.describe()).typed_search_attributes.get(SearchKey.STAGE)

    async def status(self) -> Status:
        return await self.client.get_workflow_handle(self.handle.id).query(QueryName.STATUS, result_type=Status)

    async def answered_after_stored(self, update_id: str, event: str) -> None:
        await answered_after_stored(self.client, self.handle, update_id, event)

    async def timer_fires_while_held(self, wait: timedelta, *, then_stored: list[str]) -> Gate:
        """Let a policy wait run out with `record_steps` held: the timer's batch (ending with the
        events `then_stored`) is in flight, unstored, until the returned gate opens."""
        gate = self.stubs.hold("record_steps")
        await self.env.sleep(wait + SECOND)
        await gate.reached.wait()
        assert self.stubs.events()[-len(then_stored):] == then_stored
        return gate

    async def restart_worker(self) -> None:
        """Stop the worker and start another on the queue (each replays what it works on)."""
        await self.worker.aclose()
        self.worker = contextlib.AsyncExitStack()
        await self.worker.enter_async_context(stub_worker(self.client, self.stubs, self.task_queue))


@pytest.fixture
async def run(env: WorkflowEnvironment) -> AsyncIterator[Run]:
    """A routine request, consent sought, on a stub worker: the test drives it from there."""
    now = await env.get_current_time()
    stubs = Stubs(intake_snapshot(retention_until=now + timedelta(days=30)))
    req = example("routine-consent")
    worker = contextlib.AsyncExitStack()
    task_queue = await worker.enter_async_context(stub_worker(env.client, stubs))
    handle = await env.client.start_workflow(WORKFLOW_TYPE, ShareInput(request=req), id=f"share-{req.request_id}",
                                             task_queue=task_queue)
    first = env.client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    r = Run(env, stubs, first, req.request_id, req.digest(), task_queue, worker)
    try:
        await r.shown(lambda stage: stage == "consent")
        yield r
        # Ended before its worker stops: a workflow left waiting with no worker would stall time skipping.
        if (await handle.describe()).status.name == "RUNNING":
            await handle.terminate("test finished")
    finally:
        await r.worker.aclose()


CONSENT = ConsentAction(status="given", by="np-teacher")
APPROVE = DecisionAction(decision="approve", manager="np-dsl", reason="proportionate")
COMMENT = DecisionAction(decision="comment", manager="np-head", reason="noted")
ACK = AckAction(agency="county-childrens-services")


async def to_receipt(run: Run) -> None:
    await run.act(UpdateName.CONSENT, CONSENT)
    await run.shown(lambda stage: stage == "manager_review")
    await run.act(UpdateName.DECIDE, APPROVE)
    await run.shown(lambda stage: stage == "receipt")


async def test_an_update_that_ends_the_wait_is_stored_with_the_next_stage_and_answered_after_it(run: Run) -> None:
    """The storing rule: the run goes first, so one batch holds the consent and the manager's
    request; the consent's answer waits for that batch."""
    await run.act(UpdateName.CONSENT, CONSENT, "consent")
    await run.shown(lambda stage: stage == "manager_review")
    await run.act(UpdateName.DECIDE, APPROVE, "approve")
    await run.shown(lambda stage: stage == "receipt")
    assert [[e.event for e in b.events] for b in run.stubs.batches] == [
        ["request_accepted", "consent_requested"],
        ["consent_given", "manager_asked"],
        ["manager_approve", "transmission_started"],
        ["bundle_delivered", "receipt_started"],
    ]
    assert run.stubs.batches[-1].record is not None  # the record, as it stands when delivered
    assert_each_step_stored_once_in_order(run.stubs)
    await run.answered_after_stored("consent", "consent_given")
    await run.answered_after_stored("approve", "manager_approve")


async def test_an_update_that_ends_the_wait_while_the_previous_batch_is_in_flight_waits_for_both(run: Run) -> None:
    """A comment's batch is still being stored when the approval arrives: the approval goes with the
    next stage's batch, is answered only once both are stored, and nothing is sealed before."""
    await run.act(UpdateName.CONSENT, CONSENT)
    await run.shown(lambda stage: stage == "manager_review")
    gate = run.stubs.hold("record_steps")
    comment = run.acting(UpdateName.DECIDE, COMMENT, "comment")
    await gate.reached.wait()
    approval = run.acting(UpdateName.DECIDE, APPROVE, "approve")
    await run.stubs.until(lambda: "manager_approve" in run.stubs.events())
    assert not comment.done() and not approval.done()
    assert "seal_and_deliver" not in run.stubs.log
    gate.open()
    await asyncio.gather(comment, approval)
    await run.shown(lambda stage: stage == "receipt")
    log = run.stubs.log
    assert log.index("stored 5-5") < log.index("seal_and_deliver") and log.index("stored 6-7") < log.index(
        "seal_and_deliver"), log
    assert_each_step_stored_once_in_order(run.stubs)
    await run.answered_after_stored("comment", "manager_comment")
    await run.answered_after_stored("approve", "manager_approve")


async def test_a_decision_racing_the_escalation_timeout_is_stored_once_and_ends_the_wait(run: Run) -> None:
    """Tier 1's silence escalates while the tier-1 manager approves: the escalation's batch is in
    flight; the approval is its own batch, answered after both, and the request goes on to share."""
    await run.act(UpdateName.CONSENT, CONSENT)
    await run.shown(lambda stage: stage == "manager_review")
    gate = await run.timer_fires_while_held(POLICY.manager_wait, then_stored=["manager_escalated"])
    approval = run.acting(UpdateName.DECIDE, APPROVE, "approve")
    await run.stubs.until(lambda: "manager_approve" in run.stubs.events())
    gate.open()
    await approval
    await run.shown(lambda stage: stage == "receipt")
    events = run.stubs.events()
    assert events.count("manager_escalated") == 1 and events.count("manager_approve") == 1
    assert_each_step_stored_once_in_order(run.stubs)
    await run.answered_after_stored("approve", "manager_approve")


async def test_an_update_arriving_between_a_timer_and_the_next_stage_is_judged_by_the_stage_shown(run: Run) -> None:
    """Consent times out; while the next stage's batch is stored the request still shows consent:
    an override is accepted (and stored once, after the timeout), a late consent is refused."""
    gate = await run.timer_fires_while_held(POLICY.consent_wait, then_stored=["consent_timed_out", "manager_asked"])
    assert (await run.status()).stage == "consent"
    override = run.acting(UpdateName.OVERRIDE, OverrideAction(ground="would_cause_harmful_delay", reason="r",
                                                              by="np-teacher"), "override")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await run.act(UpdateName.CONSENT, CONSENT)
    assert "consent is not awaited (stage: consent, consent: timed_out)" in str(refused.value.cause)
    await run.stubs.until(lambda: "safeguarding_override" in run.stubs.events())
    gate.open()
    assert (await override).override_ground == "would_cause_harmful_delay"
    await run.shown(lambda stage: stage == "manager_review")
    await run.act(UpdateName.DECIDE, APPROVE)  # the override makes the approval lawful
    await run.shown(lambda stage: stage == "receipt")
    assert_each_step_stored_once_in_order(run.stubs)
    await run.answered_after_stored("override", "safeguarding_override")


async def test_an_acknowledgement_racing_the_receipt_reminder_is_stored_once_and_nothing_escalates(run: Run) -> None:
    """The reminder's batch is in flight when the recipient acknowledges: the acknowledgement is
    stored once, with its step, and the request goes on to retention with no escalation."""
    await to_receipt(run)
    gate = await run.timer_fires_while_held(POLICY.receipt_wait, then_stored=["receipt_reminder"])
    ack = run.acting(UpdateName.ACKNOWLEDGE, ACK, "ack")
    await run.stubs.until(lambda: "bundle_acknowledged" in run.stubs.events())
    gate.open()
    assert (await ack).acknowledged_at is not None
    await run.shown(lambda stage: stage == "retention")
    events = run.stubs.events()
    assert events.count("receipt_reminder") == 1 and events.count("bundle_acknowledged") == 1
    assert "receipt_escalated" not in events and not (await run.status()).overdue
    assert [b.acknowledged_at is not None for b in run.stubs.batches].count(True) == 1
    assert_each_step_stored_once_in_order(run.stubs)
    await run.answered_after_stored("ack", "bundle_acknowledged")


async def test_a_hold_arriving_while_the_content_is_disposed_of_is_refused_and_deletion_completes(run: Run) -> None:
    """Deletion cannot be undone once it has begun: a hold that arrives during it is refused, never
    accepted and then ignored."""
    await to_receipt(run)
    await run.act(UpdateName.ACKNOWLEDGE, ACK)
    await run.shown(lambda stage: stage == "retention")
    gate = run.stubs.hold("dispose")
    until = run.stubs.intake.retention_until
    await run.env.sleep(until - await run.env.get_current_time() + SECOND)
    await gate.reached.wait()
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await run.act(UpdateName.LEGAL_HOLD, HoldAction(hold=True, reason="inquiry", by="np-dpo"))
    assert "content already deleted" in str(refused.value.cause)
    gate.open()
    final = await run.client.get_workflow_handle(run.handle.id, result_type=Status).result()
    assert final.stage == "deleted" and not final.held and final.deleted_at is not None
    events = run.stubs.events()
    assert not [e for e in events if e.startswith("legal_hold")] and events.count("content_destroyed") == 1
    assert run.stubs.log[-4:] == ["dispose", "shred_history_key", f"record_steps {len(events)}-{len(events)}",
                                  f"stored {len(events)}-{len(events)}"]
    assert_each_step_stored_once_in_order(run.stubs)


async def test_a_duplicate_update_after_a_worker_restart_is_answered_once_and_stored_once(
    env: WorkflowEnvironment, run: Run,
) -> None:
    """An actor retrying after a worker restart: the same update id gets the same answer without a
    second step, and the same signed decision sent anew is refused as a replay, from state rebuilt
    by replaying the history on the new worker."""
    await run.act(UpdateName.CONSENT, CONSENT)
    await run.shown(lambda stage: stage == "manager_review")
    signed = sign(APPROVE, run.request_id, run.digest, KEYS["np-dsl"], await env.get_current_time())
    first = await run.act(UpdateName.DECIDE, signed, "approve")
    await run.shown(lambda stage: stage == "receipt")
    await run.restart_worker()
    again = await run.act(UpdateName.DECIDE, signed, "approve")
    assert again == first
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await run.act(UpdateName.DECIDE, signed, "approve-again")
    assert "already recorded (a replay)" in str(refused.value.cause)
    assert run.stubs.events().count("manager_approve") == 1
    assert_each_step_stored_once_in_order(run.stubs)
