"""Stand-ins for Safeshare's activities, registered under their names (samples-python's mocks), for
workflow tests that choose how the side effects interleave with the actors' updates.

Each stub records what the workflow asked of it; a test can hold the next call of any of them at a
`Gate` until it opens it, and wait on conditions over what was recorded. Nothing here sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

import crypto
from schemas import (
    AcceptInput,
    DeliverInput,
    Intake,
    ItemSummary,
    NotifyInput,
    NotifyResult,
    PushInput,
    PushResult,
    Receipt,
    RequestAt,
    StagePolicy,
    StepsInput,
    StepsResult,
    Tombstone,
)
from workers import RUNNER
from workflows import ShareRequestWorkflow

# Everyone who signs in these tests, each with a key of their own.
KEYS = {who: crypto.SigningKey.generate()
        for who in ("np-teacher", "np-dsl", "np-head", "np-dpo", "county-childrens-services")}
POLICY = StagePolicy(consent_wait=timedelta(days=5), manager_wait=timedelta(days=2), receipt_wait=timedelta(days=3))


def intake_snapshot(retention_until: datetime) -> Intake:
    """What `accept_request` returns for the routine-consent example: two items, three manager tiers."""
    items = [ItemSummary(id=i, category=i, special_category=False, kind="fact", sha256="0" * 64)
             for i in ("attendance", "behaviour")]
    return Intake(
        items=items, protected_third_parties=0,
        managers=[("np-dsl", 1), ("np-head", 2), ("np-trust-safeguarding", 3)],
        disclosing_contacts=["np-teacher", "np-dsl", "np-head", "np-dpo"], recipient_contacts=["cs-front-door"],
        recipient_managers=["cs-team-manager"], dpo=["np-dpo"], stage_policy=POLICY, escalation_tiers=3,
        receipt_reminders=1, retention_until=retention_until,
        signing_keys={who: key.public_b64 for who, key in KEYS.items()}, recipient_delivery="inbox",
    )


@dataclass
class Gate:
    """Holds one call of an activity: `reached` is set when it arrives, and it waits for `open()`."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)

    def open(self) -> None:
        self.opened.set()


class Stubs:
    """The activities, as stubs that record their calls. `log` is every call and every stored batch
    in the order they happened, e.g. `record_steps 3-5`, `stored 3-5`, `seal_and_deliver`."""

    def __init__(self, intake: Intake) -> None:
        self.intake = intake
        self.batches: list[StepsInput] = []  # record_steps' inputs, in the order the calls began
        self.log: list[str] = []
        self._gates: dict[str, Gate] = {}
        self._changed = asyncio.Condition()

    def hold(self, name: str) -> Gate:
        """Hold the next call of the activity `name` at a gate."""
        self._gates[name] = gate = Gate()
        return gate

    async def until(self, check: Callable[[], bool]) -> None:
        """Wait until a condition over what the stubs recorded holds (re-checked on every call)."""
        async with self._changed:
            await self._changed.wait_for(check)

    def events(self) -> list[str]:
        return [e.event for b in self.batches for e in b.events]

    @property
    def activities(self) -> list[Callable]:
        return [self.accept_request, self.record_steps, self.send_notifications, self.seal_and_deliver,
                self.push_bundle, self.dispose, self.shred_history_key]

    async def _call(self, entry: str, name: str | None = None) -> None:
        await self._note(entry)
        gate = self._gates.pop(name or entry, None)
        if gate is not None:
            gate.reached.set()
            await gate.opened.wait()

    async def _note(self, entry: str) -> None:
        async with self._changed:
            self.log.append(entry)
            self._changed.notify_all()

    @activity.defn(name="accept_request")
    async def accept_request(self, inp: AcceptInput) -> Intake:
        await self._call("accept_request")
        return self.intake

    @activity.defn(name="record_steps")
    async def record_steps(self, inp: StepsInput) -> StepsResult:
        self.batches.append(inp)
        steps = _span(inp)
        await self._call(f"record_steps {steps}", "record_steps")
        await self._note(f"stored {steps}")
        return StepsResult()

    @activity.defn(name="send_notifications")
    async def send_notifications(self, inp: NotifyInput) -> NotifyResult:
        await self._call("send_notifications")
        return NotifyResult(sent=0)

    @activity.defn(name="seal_and_deliver")
    async def seal_and_deliver(self, inp: DeliverInput) -> Receipt:
        await self._call("seal_and_deliver")
        return Receipt(bundle_sha256="0" * 64, delivered_at=inp.at, withheld_identities=0)

    @activity.defn(name="push_bundle")
    async def push_bundle(self, inp: PushInput) -> PushResult:
        await self._call("push_bundle")
        return PushResult(pushed=False)

    @activity.defn(name="dispose")
    async def dispose(self, inp: RequestAt) -> Tombstone:
        await self._call("dispose")
        return Tombstone(request_id=inp.request_id, destroyed_at=inp.at)

    @activity.defn(name="shred_history_key")
    async def shred_history_key(self, inp: RequestAt) -> None:
        await self._call("shred_history_key")


def _span(inp: StepsInput) -> str:
    numbers = [int(e.step[:5]) for e in inp.events]
    return f"{numbers[0]}-{numbers[-1]}" if numbers else "-"


@contextlib.asynccontextmanager
async def stub_worker(client: Client, stubs: Stubs, task_queue: str | None = None) -> AsyncIterator[str]:
    """The share workflow with these stubs on a task queue (a fresh one unless given). No workflow
    is kept in the cache: every workflow task replays the history so far, so an interleaving that
    would not replay after a worker restart fails the test."""
    task_queue = task_queue or f"stubs-{uuid.uuid4()}"
    async with Worker(client, task_queue=task_queue, workflows=[ShareRequestWorkflow], activities=stubs.activities,
                      workflow_runner=RUNNER, max_cached_workflows=0):
        yield task_queue


async def answered_after_stored(client: Client, handle: WorkflowHandle, update_id: str, event: str) -> None:
    """The update was answered only after the batch holding its step (`event`) was stored: read from
    the run's history, where each happened as an event."""
    stored_at: dict[int, int] = {}  # record_steps' scheduled event id -> its completed event id
    holding, answered = [], None
    for e in (await handle.fetch_history()).events:
        if e.HasField("activity_task_scheduled_event_attributes"):
            scheduled = e.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == "record_steps":
                [batch] = await client.data_converter.decode(scheduled.input.payloads, [StepsInput])
                if any(step.event == event for step in batch.events):
                    holding.append(e.event_id)
        elif e.HasField("activity_task_completed_event_attributes"):
            stored_at[e.activity_task_completed_event_attributes.scheduled_event_id] = e.event_id
        elif (e.HasField("workflow_execution_update_completed_event_attributes")
              and e.workflow_execution_update_completed_event_attributes.meta.update_id == update_id):
            answered = e.event_id
    assert len(holding) == 1, f"{event}: in {len(holding)} batches"
    assert answered is not None and stored_at[holding[0]] < answered, (event, stored_at.get(holding[0]), answered)


def assert_each_step_stored_once_in_order(stubs: Stubs) -> None:
    """Every audited step in exactly one batch, numbered without a gap, each batch in step order."""
    numbers = [int(e.step[:5]) for b in stubs.batches for e in b.events]
    assert numbers == list(range(1, len(numbers) + 1)), stubs.log
