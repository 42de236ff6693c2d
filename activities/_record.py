"""Recording: a stage's audited steps, its decision record and an acknowledgement, stored together."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from temporalio import activity

from schemas import Directory, Notification, StepsInput, StepsResult
from store import AuditStep, Store

from . import _metrics as metrics
from ._channels import Unavailable
from ._notify import NotifyActivities, compose

log = structlog.get_logger("safeshare.activities")

# The prompt try at sending what a batch queued, inside `record_steps`' 15 s.
PROMPT_SEND_SECONDS = 5.0


@dataclass(frozen=True)
class RecordActivities:
    store: Store
    directory: Directory  # who the notifications go to, and by which channel
    notify: NotifyActivities  # the prompt try sends as `send_notifications` does

    @activity.defn
    async def record_steps(self, inp: StepsInput) -> StepsResult:
        """Store what the workflow has to record since it last did, then make a prompt try at
        sending the notifications it queued.

        Several side effects, because they must hold together. In one transaction: each audited
        step's audit entry, its encrypted note and the notifications it queues (no notification
        without its entry in the log, no entry whose notifications were lost), with the decision
        record as it now stands and an acknowledgement, so what the workflow shows next rests on
        all of it. The send after the commit is a first try only (each step's bounded at
        PROMPT_SEND_SECONDS): it usually succeeds, and then a stage costs one activity, not two; the
        steps whose notifications it could not send are returned for `send_notifications`, which
        retries. Keyed on (request_id, step): a retry stores nothing twice and sends only what is
        still unsent.
        """
        queued = {e.step: [m for n in e.notices for m in compose(self.directory, e, n)] for e in inp.events}
        recorded = await self.store.record_steps(
            inp.request_id,
            [AuditStep(step=e.step, event=e.event, actor=e.actor, at=e.at, data=e.data, note=e.note,
                       notices=queued[e.step]) for e in inp.events],
            record=(inp.record.model_dump_json(), inp.record.updated_at) if inp.record else None,
            acknowledged_at=inp.acknowledged_at,
            now=inp.events[-1].at if inp.events else (inp.record.updated_at if inp.record else inp.acknowledged_at),
        )
        self._log_recorded(inp, recorded, queued)
        # A step this try recorded has its messages just queued, unsent: they are sent as composed.
        # One a failed try recorded may have been partly sent: its unsent rows are read back.
        new = set(recorded)
        return await self._send_promptly(
            inp.request_id, [(step, msgs if step in new else None) for step, msgs in queued.items() if msgs])

    def _log_recorded(self, inp: StepsInput, recorded: list[str], queued: dict[str, list[Notification]]) -> None:
        """Once per step, when the store says it is new. A step's data is logged under `data`, so
        none of its keys (a `notification_failed` step has a `step`) can clash with the line's own."""
        events = {e.step: e for e in inp.events}
        for step in recorded:
            e = events[step]
            log.info(e.event, request_id=inp.request_id, step=step, actor=e.actor, data=e.data)
            metrics.event_recorded(e.event)
            for msg in queued[step]:
                log.info("notification_queued", request_id=inp.request_id, kind=msg.kind, to=msg.to_contact)
        if inp.record:
            log.info("record_written", request_id=inp.request_id, outcome=inp.record.outcome)

    async def _send_promptly(
        self, request_id: str, steps: list[tuple[str, list[Notification] | None]],
    ) -> StepsResult:
        """The first try at sending each step's notifications. A receiver's refusal is final; an
        unavailable channel, or the time bound, leaves that step and the rest to the retries."""
        refused: list[str] = []
        for n, (step, queued) in enumerate(steps):
            try:
                # Well inside the activity's timeout: a slow channel is left to the retries.
                _, failed = await asyncio.wait_for(
                    self.notify.send_queued(request_id, step, prompt=True, queued=queued), PROMPT_SEND_SECONDS)
            except (Unavailable, TimeoutError) as err:
                log.info("notification_deferred", request_id=request_id, step=step, cause=type(err).__name__)
                return StepsResult(unsent=[s for s, _ in steps[n:]], refused=refused)
            if failed:
                refused.append(step)
        return StepsResult(refused=refused)
