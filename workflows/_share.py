"""One share request, from intake to deletion, as one durable workflow.

The run reads as DESIGN.md's lifecycle. Actors act through Workflow Updates (`_actors.py`) whose
validators refuse what the guidance does not allow (`_rules.py`), so a refusal reaches the actor
at once and never enters the history. What each stage records is kept and stored in one batch
(`_steps.py`). The first run holds the submitted request; once its content is in the store the
state carries only ids, categories, hashes and decisions, and the years-long retention wait runs
in yearly continue-as-new runs that hold no personal data at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ActivityError

from ._actors import ActorActions
from ._options import PUSH, STEP
from ._rules import decision_made
from ._steps import StageRecords, failure_kind

with workflow.unsafe.imports_passed_through():
    from activities import DeliveryActivities, DisposalActivities, IntakeActivities
    from schemas import (
        UNSAFE_TO_INFORM_GROUNDS,
        WORKFLOW_TYPE,
        AcceptInput,
        Awaiting,
        DecisionRecord,
        DeliverInput,
        Intake,
        Notice,
        PushInput,
        RequestAt,
        ShareInput,
        ShareRequest,
        ShareState,
        Stage,
        StagePolicy,
        Status,
        add_working_hours,
    )

# The parked workflow continues as new at least yearly: histories stay short, and a request
# parked for decades picks up current workflow code each year.
RETENTION_CHUNK = timedelta(days=365)


@workflow.defn(name=WORKFLOW_TYPE)
class ShareRequestWorkflow(ActorActions):
    @workflow.init
    def __init__(self, inp: ShareInput) -> None:
        if inp.state is not None:
            self._s = inp.state
        else:
            assert inp.request is not None
            r = inp.request
            self._s = ShareState(
                request_id=r.request_id, direction=r.direction, urgency=r.urgency,
                purpose=r.purpose.category, disclosing_agency=r.disclosing_agency,
                recipient_agency=r.recipient_agency, requested_by=r.requested_by,
                lawful_basis=r.lawful_basis, special_condition=r.special_condition, agreement_ref=r.agreement_ref,
                inform_subject=r.inform_subject.inform, request_sha256=r.digest(), rag=r.rag,
                submitted_by=inp.submission.by if inp.submission else None,
                submission_signature=inp.submission.signature if inp.submission else None,
            )
        self._records = StageRecords(self._s, self._decision_record)

    @workflow.run
    async def run(self, inp: ShareInput) -> Status:
        s = self._s
        if inp.request is not None:
            await self._accept(AcceptInput(request=inp.request, submission=inp.submission))
            await self._seek_consent(inp.request)
            if s.declined:
                pass  # withdrawn by the practitioner while consent was awaited: no manager is asked
            elif self._policy.share_now_review_later and s.urgency == "emergency":
                # ICO emergency step: share now, and the manager's review must still happen.
                await self._transmit()
                await self._consult("retrospective_review")
            else:
                await self._consult("manager_review")
                if not s.declined:
                    await self._transmit()
            if s.receipt is not None:
                await self._await_receipt()
                await self._inform_subject()
            self._records.add_decision_record()
        if s.deleted_at is None:
            await self._retain()
            await self._dispose()  # ends this run: continues as new without the request's key
        await self._close()
        return self.status()

    # --- stages --------------------------------------------------------------------------------

    async def _accept(self, accept: AcceptInput) -> None:
        """Intake refuses a submission that is not its submitter's signed act, or reuses an id:
        the run then fails, before anything is stored or sealed."""
        s = self._s
        s.intake = await workflow.execute_activity_method(IntakeActivities.accept_request, accept, **STEP)
        self._records.add_step("request_accepted", actor=s.requested_by,
                               data={"items": len(s.intake.items), "direction": s.direction})

    async def _seek_consent(self, request: ShareRequest) -> None:
        s, plan = self._s, request.consent
        if plan.action == "do_not_seek":
            s.override_ground, s.override_by = plan.ground, s.requested_by
            self._records.add_step("consent_not_sought", actor=s.requested_by, data={"ground": plan.ground},
                                   note=plan.reason)
            return
        s.consent = "awaited"
        due = self._due(self._policy.consent_wait)
        await self._begin_stage("consent", _awaiting("consent", [s.requested_by], due), event="consent_requested",
                                asks="the family's consent, recorded with `safeshare consent`")
        answered = lambda: s.consent != "awaited" or s.override_ground is not None or s.declined  # noqa: E731
        if not await self._records.store_then_wait(answered, _left(due)):
            s.consent = "timed_out"
            self._records.add_step("consent_timed_out")

    async def _consult(self, stage: Stage) -> None:
        """Ask tier 1; on silence escalate tier by tier; the last tier's silence marks overdue."""
        s, intake = self._s, self._intake
        tiers = intake.tiers()[: intake.escalation_tiers]
        decided = lambda: decision_made(s, stage)  # noqa: E731
        what = "a retrospective review" if stage == "retrospective_review" else "a decision"
        for n, tier in enumerate(tiers):
            managers, asked = intake.managers_at(tier), workflow.now()
            due = self._manager_due(asked)
            await self._begin_stage(stage, _awaiting("manager_decision", managers, due),
                                    event="manager_asked" if n == 0 else "manager_escalated",
                                    asks=f"{what}, with `safeshare decide`", data={"tier": tier}, escalation_tier=tier)
            while True:
                rated = s.rag
                if not await self._records.store_then_wait(lambda: decided() or s.rag != rated, _left(due)):  # noqa: B023
                    break
                if decided():
                    return
                # Re-rated: this tier's deadline is the new rating's timescale from when it was asked.
                due = self._manager_due(asked)
                await self._show(awaiting=_awaiting("manager_decision", managers, due))
        # Silence never approves: the request waits, flagged for operators and every manager.
        everyone = [m for m, _ in intake.managers] + intake.dpo
        self._records.add_step("decision_overdue", notices=[Notice(to=everyone, kind="decision_overdue",
                                                                   awaiting=what)])
        await self._show(overdue=True, awaiting=_awaiting("manager_decision", everyone, None))
        await self._records.store_then_wait(decided, None)
        await self._show(overdue=False)

    async def _transmit(self) -> None:
        s, intake = self._s, self._intake
        items = self._sendable()
        if not items:
            # Only on an emergency share, whose every item names a protected person in a way no
            # program can withhold: nothing goes, and the requester must know at once.
            s.outcome = "not_shared"
            self._records.add_step("share_withheld", notices=[Notice(
                to=[s.requested_by], kind="share_withheld",
                awaiting="the items rewritten so that no protected person can be identified, in a new request")])
            return
        await self._begin_stage("transmission", None)
        s.receipt = await workflow.execute_activity_method(
            DeliveryActivities.seal_and_deliver,
            DeliverInput(request_id=s.request_id, item_ids=items, disclosing_agency=s.disclosing_agency,
                         recipient_agency=s.recipient_agency, at=workflow.now()),
            **STEP,
        )
        channel = await self._push() if intake.recipient_delivery == "webhook" else "inbox"
        s.outcome = "shared" if len(items) == len(intake.items) else "partly_shared"
        self._records.add_step(
            "bundle_delivered",
            data={"items": len(items), "withheld_identities": s.receipt.withheld_identities,
                  "bundle_sha256": s.receipt.bundle_sha256, "channel": channel},
            notices=[Notice(to=intake.recipient_contacts, kind="bundle_delivered",
                            awaiting="open and acknowledge the sealed bundle",
                            deadline=self._due(self._policy.receipt_wait))],
        )
        self._records.add_decision_record()

    async def _push(self) -> str:
        """Push the bundle to a webhook recipient; the store's inbox keeps it either way."""
        s = self._s
        try:
            pushed = await workflow.execute_activity_method(
                DeliveryActivities.push_bundle,
                PushInput(request_id=s.request_id, recipient_agency=s.recipient_agency), **PUSH,
            )
        except ActivityError as err:
            # Refused by the receiver (4xx): the recipient can still pull it from the inbox.
            self._records.add_step("bundle_push_refused", data={"cause": failure_kind(err)})
            return "inbox"
        return "webhook" if pushed.pushed else "inbox"

    async def _await_receipt(self) -> None:
        s, intake = self._s, self._intake
        # A recalled bundle is not awaited any more: nothing to acknowledge, nobody to remind.
        acked = lambda: s.acknowledged_at is not None or s.recall is not None  # noqa: E731
        if acked():
            return
        due = self._due(self._policy.receipt_wait)
        await self._begin_stage("receipt", _awaiting("acknowledgement", intake.recipient_contacts, due))
        for n in range(intake.receipt_reminders + 1):
            if n:
                due = self._due(self._policy.receipt_wait)
                self._records.add_step("receipt_reminder", notices=[Notice(
                    to=intake.recipient_contacts, kind="receipt_reminder", awaiting="acknowledge the sealed bundle")])
                await self._show(awaiting=_awaiting("acknowledgement", intake.recipient_contacts, due))
            if await self._records.store_then_wait(acked, _left(due)):
                return
        # Escalate, and move on: the record and retention must not wait on the recipient.
        # A late acknowledgement is still accepted and clears the flag.
        self._records.add_step("receipt_escalated", notices=[Notice(
            to=intake.recipient_managers + intake.managers_at(intake.tiers()[0]), kind="receipt_overdue",
            awaiting="the recipient's acknowledgement of the sealed bundle")])
        await self._show(overdue=True)

    async def _inform_subject(self) -> None:
        s = self._s
        # Golden rule 6: tell the family what was shared, unless the override ground makes it unsafe.
        s.subject_informed = s.inform_subject and s.override_ground not in UNSAFE_TO_INFORM_GROUNDS
        if s.subject_informed:
            self._records.add_step("subject_to_be_informed", notices=[Notice(
                to=[s.requested_by], kind="inform_subject",
                awaiting="tell the child/family what was shared, with whom and why")])
        else:
            self._records.add_step("subject_not_informed", data={"ground": s.override_ground})

    async def _retain(self) -> None:
        s = self._s
        until = self._intake.retention_until
        expiry = Awaiting(what="retention_expiry", from_whom=[], deadline=until)
        if s.stage != "retention":  # a yearly run's stage is already recorded and shown
            await self._begin_stage("retention", expiry)
        while s.held or workflow.now() < until:
            held = s.held
            span = RETENTION_CHUNK if held else min(until - workflow.now(), RETENTION_CHUNK)
            if await self._records.store_then_wait(lambda: s.held != held, span):  # noqa: B023 - evaluated now
                continue  # a hold was placed or released
            if s.held or workflow.now() < until:
                await self._continue_as_new()

    async def _dispose(self) -> NoReturn:
        """Destroy the content and retire the request's history key, so that the run this one
        continues as is encrypted under the deployment's key alone; that run destroys the key."""
        s = self._s
        await self._records.store()
        await workflow.wait_condition(workflow.all_handlers_finished)
        # Irreversible from here: the rules refuse every action on a deleted request.
        # The digest answered re-submissions; with the content gone it only links to it.
        s.stage, s.awaiting, s.request_sha256 = "deleted", None, None
        tomb = await workflow.execute_activity_method(
            DisposalActivities.dispose, RequestAt(request_id=s.request_id, at=workflow.now()), **STEP)
        s.deleted_at = tomb.destroyed_at
        # The memo is passed on explicitly so that it too is re-encrypted under the deployment key:
        # left out, the server would copy the old one, sealed under the key about to be shredded.
        workflow.continue_as_new(ShareInput(state=s), memo=dict(workflow.memo()))

    async def _close(self) -> None:
        """The tombstone run: every earlier run's payloads become unreadable; the deletion is recorded."""
        s = self._s
        await workflow.execute_activity_method(
            DisposalActivities.shred_history_key, RequestAt(request_id=s.request_id, at=workflow.now()), **STEP)
        self._records.add_step("content_destroyed")
        self._records.add_decision_record()
        await self._show()

    # --- helpers -------------------------------------------------------------------------------

    async def _begin_stage(
        self, stage: Stage, awaiting: Awaiting | None, *, event: str | None = None, asks: str = "",
        data: dict | None = None, **shown: Any,
    ) -> None:
        """Record the stage's first step, telling who is awaited what is asked of them, then show it."""
        event = event or f"{stage}_started"
        notices = [Notice(to=awaiting.from_whom, kind=event, awaiting=asks, deadline=awaiting.deadline)
                   ] if awaiting and awaiting.from_whom and asks else []
        self._records.add_step(event, data=data, notices=notices)
        await self._show(stage=stage, awaiting=awaiting, **shown)

    async def _show(self, **changes: Any) -> None:
        """Store what is kept, then make the changes and show them: what operators and actors see
        rests on stored steps, and the people it shows awaited have been notified."""
        await self._records.store()
        for name, value in changes.items():
            setattr(self._s, name, value)
        self._publish()

    async def _continue_as_new(self) -> NoReturn:
        await self._records.store()
        await workflow.wait_condition(workflow.all_handlers_finished)  # each stores before it answers
        workflow.continue_as_new(ShareInput(state=self._s))

    @property
    def _intake(self) -> Intake:
        assert self._s.intake is not None
        return self._s.intake

    @property
    def _policy(self) -> StagePolicy:
        return self._intake.stage_policy

    def _due(self, wait: timedelta, since: datetime | None = None, working: bool | None = None) -> datetime:
        """When a wait starting now (or `since`) ends: in working time if the policy counts it so
        (on the calendar snapshotted at intake, so replay computes the same moment), else calendar time."""
        calendar, start = self._intake.calendar, since or workflow.now()
        working = self._policy.working_hours if working is None else working
        return add_working_hours(start, wait, calendar) if working and calendar is not None else start + wait

    def _manager_due(self, since: datetime) -> datetime:
        """A manager tier's deadline: the RAG rating's timescale in working hours if the policy
        gives one, else the urgency's manager_wait."""
        timescale = self._intake.rag_timescales.get(self._s.rag) if self._s.rag else None
        if timescale is not None:
            return self._due(timescale, since, working=True)
        return self._due(self._policy.manager_wait, since)

    def _sendable(self) -> list[str]:
        """The items approved (all, for an emergency share before its review), less any that mention
        a protected person in a way no program can withhold (golden rule 5): those are never sent."""
        intake = self._intake
        unsafe = {i.id for i in intake.items if i.needs_manual_redaction}
        return [i for i in self._s.approved_items or [i.id for i in intake.items] if i not in unsafe]

    def _decision_record(self) -> DecisionRecord:
        """Golden rule 7: what was decided, shared, with whom and why, as it stands now."""
        s, intake = self._s, self._intake
        sent = self._sendable() if s.receipt else []
        shared = [i for i in intake.items if i.id in sent]
        return DecisionRecord(
            request_id=s.request_id, outcome=s.outcome, direction=s.direction, urgency=s.urgency,
            purpose=s.purpose, disclosing_agency=s.disclosing_agency, recipient_agency=s.recipient_agency,
            requested_by=s.requested_by, lawful_basis=s.lawful_basis, special_condition=s.special_condition,
            agreement_ref=s.agreement_ref, consent_status=s.consent, override_ground=s.override_ground,
            override_by=s.override_by, override_signature=s.override_signature, ack_signature=s.ack_signature,
            submitted_by=s.submitted_by, submission_signature=s.submission_signature,
            consent_by=s.consent_by, consent_signature=s.consent_signature,
            decisions=s.decisions, categories_shared=sorted({i.category for i in shared}),
            items_shared=shared, withheld_identities=s.receipt.withheld_identities if s.receipt else 0,
            bundle_sha256=s.receipt.bundle_sha256 if s.receipt else None,
            shared_at=s.receipt.delivered_at if s.receipt else None, acknowledged_at=s.acknowledged_at,
            subject_informed=s.subject_informed, retention_until=intake.retention_until,
            deleted_at=s.deleted_at, updated_at=workflow.now(),
            recalled_at=s.recall.at if s.recall else None, recalled_by=s.recall.by if s.recall else None,
            recall_signature=s.recall.signature if s.recall else None,
            recalled_after_download=s.recall.downloaded if s.recall else None,
        )


def _awaiting(what: str, who: Sequence[str], deadline: datetime | None) -> Awaiting:
    return Awaiting(what=what, from_whom=list(who), deadline=deadline)


def _left(deadline: datetime) -> timedelta:
    """The durable timer's duration to a deadline: exactly the wait when it is calendar time."""
    return max(deadline - workflow.now(), timedelta(0))
