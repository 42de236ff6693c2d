"""What a stage has to record, kept until it must be stored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from ._options import NOTIFY, STEP

with workflow.unsafe.imports_passed_through():
    from activities import NOTIFICATION_REFUSED, NotifyActivities, RecordActivities
    from schemas import DecisionRecord, EventInput, Notice, NotifyInput, ShareState, StepsInput


def failure_kind(err: ActivityError) -> str:
    """The failure's kind (e.g. NotificationRefused, TimeoutError), never its message."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    return type(cause).__name__


class StageRecords:
    """The audited steps (each with its note and notifications), the decision record and the
    acknowledgement that the workflow has not stored yet.

    The rule: what is kept here is stored, by one `record_steps` activity in one transaction,
    before the workflow waits, shows a new stage, answers an update or continues as new. Between
    those moments a stage's steps accumulate, so a stage costs one activity, and nothing an actor
    or operator is shown rests on a step that is not stored. An update that ends the run's wait
    lets the run go first: its step is stored in the next stage's batch, and it is answered once
    that batch is stored.
    """

    def __init__(self, state: ShareState, record: Callable[[], DecisionRecord]) -> None:
        self._s = state
        self._record = record  # the decision record as it stands, built when stored
        self._steps: list[EventInput] = []
        self._record_due = False
        self._acknowledged_at: datetime | None = None
        self._in_flight: list[int] = []  # batches being stored, each as the last step number it holds
        self._run_waits_on: Callable[[], bool] | None = None
        self._run_woken = 0

    def add_step(
        self, event: str, *, actor: str = "system", data: dict | None = None, note: str | None = None,
        notices: Sequence[Notice] = (),
    ) -> None:
        """An audited step, numbered: its number keys the store's entry, so a retry writes it once."""
        s = self._s
        s.steps += 1
        self._steps.append(EventInput(
            request_id=s.request_id, step=f"{s.steps:05d}-{event}", event=event, actor=actor,
            at=workflow.now(), data=data or {}, note=note, notices=list(notices)))

    def add_decision_record(self) -> None:
        """The decision record, written as it stands when the batch is stored."""
        self._record_due = True

    def add_acknowledgement(self, at: datetime) -> None:
        self._acknowledged_at = at

    async def store(self) -> None:
        """Store what is kept. Returns once every step added so far is stored (some may be in a
        batch another handler started), its notifications sent or handed to their retries."""
        upto = self._s.steps
        if self._steps or self._record_due or self._acknowledged_at:
            await self._store_batch(upto)
        if any(last <= upto for last in self._in_flight):
            await workflow.wait_condition(lambda: all(last > upto for last in self._in_flight))

    async def store_then_wait(self, condition: Callable[[], bool], timeout: timedelta | None) -> bool:
        """The run's wait: store, then wait for the condition (a durable timer; None: no timeout).
        Whether it holds: an action that arrived with the timer still counts."""
        await self.store()
        self._run_waits_on = condition
        try:
            await workflow.wait_condition(condition, timeout=timeout)
        except TimeoutError:
            pass
        finally:
            self._run_waits_on = None
            self._run_woken += 1
        return condition()

    async def store_before_answer(self) -> None:
        """An update's steps, stored before it is answered; after the run's next batch if the
        update ended the run's wait."""
        waits_on, woken = self._run_waits_on, self._run_woken
        if waits_on is not None and waits_on():
            await workflow.wait_condition(lambda: self._run_woken > woken)
        await self.store()

    async def _store_batch(self, last: int) -> None:
        batch = StepsInput(request_id=self._s.request_id, events=self._steps,
                           record=self._record() if self._record_due else None,
                           acknowledged_at=self._acknowledged_at)
        self._steps, self._record_due, self._acknowledged_at = [], False, None
        self._in_flight.append(last)
        try:
            result = await workflow.execute_activity_method(RecordActivities.record_steps, batch, **STEP)
        finally:
            self._in_flight.remove(last)
        for step in result.refused:
            self.add_step("notification_failed", data={"step": step, "cause": NOTIFICATION_REFUSED})
        for step in result.unsent:
            await self._send_with_retries(step)
        if result.refused or result.unsent:
            await self.store()  # the failures just added

    async def _send_with_retries(self, step: str) -> None:
        """What `record_steps`' prompt try could not send. Refused by the receiver, or still
        unreachable after the retries: recorded, and the outbox keeps the rows for operators."""
        try:
            await workflow.execute_activity_method(
                NotifyActivities.send_notifications, NotifyInput(request_id=self._s.request_id, step=step), **NOTIFY)
        except ActivityError as err:
            self.add_step("notification_failed", data={"step": step, "cause": failure_kind(err)})
