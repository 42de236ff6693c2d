"""One share request, from intake to deletion, as one durable workflow.

The run reads as DESIGN.md's lifecycle. Actors act through Workflow Updates whose validators
refuse what the guidance does not allow, so a refusal reaches the actor at once and never enters
the history. The first run holds the submitted request; once its content is in the store the
state carries only ids, categories, hashes and decisions, and the years-long retention wait runs
in yearly continue-as-new runs that hold no personal data at all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities import NOTIFICATION_REFUSED, ShareActivities
    from schemas import (
        UNSAFE_TO_INFORM_GROUNDS,
        AckAction,
        Awaiting,
        ChallengeAction,
        ConsentAction,
        DecisionAction,
        DecisionEntry,
        DecisionRecord,
        DeliverInput,
        EventInput,
        HoldAction,
        Intake,
        Notice,
        NotifyInput,
        OverrideAction,
        PushInput,
        RequestAt,
        ShareInput,
        ShareRequest,
        ShareState,
        Signed,
        Stage,
        StagePolicy,
        Status,
        StepsInput,
        text_sha256,
    )

# Activities retry without limit (backing off to a minute): a store outage makes the request
# wait, never fail. What retrying cannot fix is raised non-retryable by the activity itself.
# Each is a few database statements or one sealing, done in well under a second; the timeout is
# how long an attempt lost with a crashed worker holds the request before it is retried.
_ACT = {
    "start_to_close_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1)),
}
# `lean-history`: fewer events per request on current code. The bundle is pushed only to a
# webhook recipient (the intake snapshot says how it takes delivery), the acknowledgement upserts
# search attributes only when it clears a flag, and the two patches before it are implied rather
# than marked. Later runs carry the answer in their state instead of checking again.
_LEAN = "lean-history"
# `folded-steps`: what a stage has to record (audit entries, the decision record, an
# acknowledgement) is kept until the workflow next has to wait, show a new stage, or answer an
# actor, and is then stored in one activity, which also makes the first try at sending the
# notifications; `send_notifications` is scheduled only for what that try could not send. Implies
# `lean-history`.
_FOLDED = "folded-steps"
# Notifications retry with backoff for about half an hour, then the step is recorded as not
# notified and the request goes on: a mail outage must not hold a safeguarding decision.
_NOTIFY = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=10),
                                maximum_attempts=12),
}
# A webhook delivery retries without limit, like the store; it heartbeats, so a worker that dies
# mid-send is noticed in seconds and the retry (same Idempotency-Key) goes to another worker.
_PUSH = {**_ACT, "heartbeat_timeout": timedelta(seconds=10)}
# The parked workflow continues as new at least yearly: histories stay short, and a request
# parked for decades picks up current workflow code at each step.
_RETENTION_CHUNK = timedelta(days=365)
# Signers' clocks may run a little ahead of the server's.
_CLOCK_SKEW = timedelta(minutes=5)

STAGE = SearchAttributeKey.for_keyword("ShareStage")
OUTCOME = SearchAttributeKey.for_keyword("ShareOutcome")
URGENCY = SearchAttributeKey.for_keyword("Urgency")
DISCLOSING = SearchAttributeKey.for_keyword("DisclosingAgency")
RECIPIENT = SearchAttributeKey.for_keyword("RecipientAgency")
CONSENT_BASIS = SearchAttributeKey.for_keyword("ConsentBasis")
TIER = SearchAttributeKey.for_int("EscalationTier")
OVERDUE = SearchAttributeKey.for_bool("Overdue")
RETENTION_UNTIL = SearchAttributeKey.for_datetime("RetentionUntil")


def _cause(err: ActivityError) -> str:
    """The failure's kind (e.g. NotificationRefused, TimeoutError): never its message."""
    cause = err.cause
    if isinstance(cause, ApplicationError) and cause.type:
        return cause.type
    return type(cause).__name__


def _refuse(message: str) -> ApplicationError:
    return ApplicationError(message, type="Refused", non_retryable=True)


@workflow.defn(name="ShareRequest")
class ShareRequestWorkflow:
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
                lawful_basis=r.lawful_basis, special_condition=r.special_condition,
                inform_subject=r.inform_subject.inform, request_sha256=r.digest(),
            )
        # `folded-steps`: recorded by the next _flush, which must come before any wait, new stage,
        # update's answer or continue-as-new; so these never need to outlive the run.
        self._pending: list[EventInput] = []
        self._record_due = False
        self._ack_due: datetime | None = None
        self._storing: list[int] = []  # batches in flight, each as the last step it holds
        # What the run waits for, and how often it has woken: an update that ends the wait lets
        # the run go first.
        self._run_waits_on: Callable[[], bool] | None = None
        self._run_woken = 0

    @workflow.run
    async def run(self, inp: ShareInput) -> Status:
        s = self._s
        if inp.request is not None:
            await self._intake(inp.request)
            await self._seek_consent(inp.request)
            if self._policy.share_now_review_later and s.urgency == "emergency":
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
            await self._write_record()
        if s.deleted_at is None:
            await self._retain()
            await self._delete()  # ends this run: continues as new without the request's key
        await self._close()
        return self.status()

    # --- stages --------------------------------------------------------------------------------

    async def _intake(self, request: ShareRequest) -> None:
        self._s.intake = await workflow.execute_activity_method(
            ShareActivities.accept_request, request, **_ACT
        )
        await self._event("request_accepted", actor=self._s.requested_by,
                          data={"items": len(self._s.intake.items), "direction": self._s.direction})

    async def _seek_consent(self, request: ShareRequest) -> None:
        s, plan = self._s, request.consent
        if plan.action == "do_not_seek":
            s.override_ground, s.override_by = plan.ground, s.requested_by
            await self._event("consent_not_sought", actor=s.requested_by,
                              data={"ground": plan.ground}, note=plan.reason)
            return
        s.consent = "awaited"
        wait = self._policy.consent_wait
        await self._enter("consent", "consent", [s.requested_by], wait, event="consent_requested",
                          awaiting="the family's consent, recorded with `safeshare consent`")
        if not await self._wait(lambda: s.consent != "awaited" or s.override_ground is not None, wait):
            s.consent = "timed_out"
            await self._event("consent_timed_out")

    async def _consult(self, stage: Stage) -> None:
        """Ask tier 1; on silence escalate tier by tier; the last tier's silence marks overdue."""
        s, intake = self._s, self._intake_snapshot
        tiers = sorted({tier for _, tier in intake.managers})[: intake.escalation_tiers]
        wait = self._policy.manager_wait
        done = lambda: self._decided(stage)  # noqa: E731
        what = "a retrospective review" if stage == "retrospective_review" else "a decision"
        for n, tier in enumerate(tiers):
            s.escalation_tier = tier
            managers = [m for m, t in intake.managers if t == tier]
            await self._enter(stage, "manager_decision", managers, wait,
                              event="manager_asked" if n == 0 else "manager_escalated",
                              awaiting=f"{what}, with `safeshare decide`", data={"tier": tier})
            if await self._wait(done, wait):
                return
        # Silence never approves: the request waits, flagged for operators and every manager.
        s.overdue = True
        everyone = [m for m, _ in intake.managers] + intake.dpo
        s.awaiting = Awaiting(what="manager_decision", from_whom=everyone, deadline=None)
        self._publish()
        await self._event("decision_overdue", notices=[Notice(to=everyone, kind="decision_overdue",
                                                              awaiting=what)])
        await self._wait(done, None)
        s.overdue = False
        self._publish()

    async def _transmit(self) -> None:
        s, intake = self._s, self._intake_snapshot
        items = self._sendable()
        if not items:
            # Only on an emergency share, whose every item names a protected person in a way no
            # program can withhold: nothing goes, and the requester must know at once.
            s.outcome = "not_shared"
            await self._event("share_withheld", notices=[Notice(
                to=[s.requested_by], kind="share_withheld",
                awaiting="the items rewritten so that no protected person can be identified, in a new request")])
            return
        await self._enter("transmission", None, [], None)
        s.receipt = await workflow.execute_activity_method(
            ShareActivities.seal_and_deliver,
            DeliverInput(request_id=s.request_id, item_ids=items, disclosing_agency=s.disclosing_agency,
                         recipient_agency=s.recipient_agency, at=workflow.now()),
            **_ACT,
        )
        channel = await self._push() if self._pushes() else "inbox"
        s.outcome = "shared" if len(items) == len(intake.items) else "partly_shared"
        await self._event(
            "bundle_delivered",
            data={"items": len(items), "withheld_identities": s.receipt.withheld_identities,
                  "bundle_sha256": s.receipt.bundle_sha256, "channel": channel},
            notices=[Notice(to=intake.recipient_contacts, kind="bundle_delivered",
                            awaiting="open and acknowledge the sealed bundle",
                            deadline=workflow.now() + self._policy.receipt_wait)],
        )
        await self._write_record()

    def _sendable(self) -> list[str]:
        """The items approved (all, for an emergency share before its review), less any that mention
        a protected person in a way no program can withhold (golden rule 5): those are never sent."""
        intake = self._intake_snapshot
        unsafe = {i.id for i in intake.items if i.needs_manual_redaction}
        return [i for i in self._s.approved_items or [i.id for i in intake.items] if i not in unsafe]

    def _pushes(self) -> bool:
        """Whether the bundle is pushed as well as kept in the inbox: on current code only to a
        webhook recipient; before `lean-history`, asked of every recipient."""
        if self._lean():
            return self._intake_snapshot.recipient_delivery != "inbox"
        return workflow.patched("push-bundle")

    async def _push(self) -> str:
        """Push the bundle to a webhook recipient; the store inbox keeps it either way."""
        s = self._s
        try:
            pushed = await workflow.execute_activity_method(
                ShareActivities.push_bundle, PushInput(request_id=s.request_id, recipient_agency=s.recipient_agency),
                **_PUSH,
            )
        except ActivityError as err:
            # Refused by the receiver (4xx): the recipient can still pull it from the inbox.
            await self._event("bundle_push_refused", data={"cause": _cause(err)})
            return "inbox"
        return "webhook" if pushed.pushed else "inbox"

    async def _await_receipt(self) -> None:
        s, intake = self._s, self._intake_snapshot
        wait = self._policy.receipt_wait
        acked = lambda: s.acknowledged_at is not None  # noqa: E731
        if acked():
            return
        await self._enter("receipt", "acknowledgement", intake.recipient_contacts, None)
        for n in range(intake.receipt_reminders + 1):
            s.awaiting = Awaiting(what="acknowledgement", from_whom=intake.recipient_contacts,
                                  deadline=workflow.now() + wait)
            if await self._wait(acked, wait):
                return
            if n < intake.receipt_reminders:
                await self._event("receipt_reminder", notices=[Notice(
                    to=intake.recipient_contacts, kind="receipt_reminder",
                    awaiting="acknowledge the sealed bundle")])
        # Escalate, and move on: the record and retention must not wait on the recipient.
        # A late acknowledgement is still accepted and clears the flag.
        s.overdue = True
        tier1 = [m for m, t in intake.managers if t == min(t for _, t in intake.managers)]
        await self._event("receipt_escalated", notices=[Notice(
            to=intake.recipient_managers + tier1, kind="receipt_overdue",
            awaiting="the recipient's acknowledgement of the sealed bundle")])
        await self._flush()
        self._publish()

    async def _inform_subject(self) -> None:
        s = self._s
        # Golden rule 6: tell the family what was shared, unless the override ground makes it unsafe.
        s.subject_informed = s.inform_subject and s.override_ground not in UNSAFE_TO_INFORM_GROUNDS
        if s.subject_informed:
            await self._event("subject_to_be_informed", notices=[Notice(
                to=[s.requested_by], kind="inform_subject",
                awaiting="tell the child/family what was shared, with whom and why")])
        else:
            await self._event("subject_not_informed", data={"ground": s.override_ground})

    async def _retain(self) -> None:
        s = self._s
        until = self._intake_snapshot.retention_until
        if s.stage != "retention" or not self._folded():
            # On `folded-steps` a yearly run records nothing and upserts nothing: the stage has not
            # changed, and the server carries the search attributes over to each new run.
            await self._enter("retention", "retention_expiry", [], None)
        s.awaiting = Awaiting(what="retention_expiry", from_whom=[], deadline=until)
        while s.held or workflow.now() < until:
            held = s.held
            span = _RETENTION_CHUNK if held else min(until - workflow.now(), _RETENTION_CHUNK)
            if await self._wait(lambda: s.held != held, span):  # noqa: B023 - evaluated now
                continue  # a hold was placed or released
            if s.held or workflow.now() < until:
                await self._flush()
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(ShareInput(state=s))

    async def _delete(self) -> None:
        s = self._s
        await self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        at = RequestAt(request_id=s.request_id, at=workflow.now())
        # The content is destroyed and the request's history key stops encrypting new payloads, so
        # the run that follows is readable under the deployment key alone; then that run shreds
        # the key for good.
        if self._folded():
            tomb = await workflow.execute_activity_method(ShareActivities.dispose, at, **_ACT)
        else:
            tomb = await workflow.execute_activity_method(ShareActivities.destroy_content, at, **_ACT)
            await workflow.execute_activity_method(ShareActivities.retire_history_key, at, **_ACT)
        s.deleted_at, s.stage, s.awaiting = tomb.destroyed_at, "deleted", None
        await workflow.wait_condition(workflow.all_handlers_finished)
        # The memo is passed on explicitly so that it too is re-encrypted under the deployment key:
        # left out, the server would copy the old one, sealed under the key about to be shredded.
        workflow.continue_as_new(ShareInput(state=s), memo=dict(workflow.memo()))

    async def _close(self) -> None:
        s = self._s
        await workflow.execute_activity_method(
            ShareActivities.shred_history_key, RequestAt(request_id=s.request_id, at=workflow.now()), **_ACT
        )
        self._publish()
        await self._event("content_destroyed")
        await self._write_record()
        await self._flush()

    # --- actors --------------------------------------------------------------------------------

    @workflow.query
    def request_sha256(self) -> str | None:
        """The submitted request's digest, so a re-submission with other content is told apart."""
        return self._s.request_sha256

    @workflow.query
    def status(self) -> Status:
        s = self._s
        items = s.intake.items if s.intake else []
        return Status(
            request_id=s.request_id, stage=s.stage, outcome=s.outcome, urgency=s.urgency,
            disclosing_agency=s.disclosing_agency, recipient_agency=s.recipient_agency,
            consent=s.consent, override_ground=s.override_ground,
            escalation_tier=s.escalation_tier, overdue=s.overdue, awaiting=s.awaiting,
            approved_items=s.approved_items, acknowledged_at=s.acknowledged_at, held=s.held,
            retention_until=s.intake.retention_until if s.intake else None, deleted_at=s.deleted_at,
            items_withholding_identity=[i.id for i in items if i.withholds_identity],
            items_needing_manual_redaction=[i.id for i in items if i.needs_manual_redaction],
        )

    @workflow.update
    async def record_consent(self, action: ConsentAction) -> Status:
        s = self._s
        s.consent = action.status
        notices = []
        if action.status == "withdrawn" and s.receipt is not None:
            notices.append(Notice(to=self._intake_snapshot.recipient_contacts, kind="consent_withdrawn",
                                  awaiting="stop further use that relied on consent"))
        await self._event(f"consent_{action.status}", actor=action.by, notices=notices)
        return await self._answer()

    @record_consent.validator
    def _check_consent(self, action: ConsentAction) -> None:
        s = self._s
        self._check_discloser(action.by, "by")
        if s.stage == "deleted":
            raise _refuse(f"request {s.request_id}: content already deleted")
        if action.status == "withdrawn":
            if s.consent != "given":
                raise _refuse(f"request {s.request_id}: only consent that was given can be withdrawn")
        elif s.stage != "consent" or s.consent != "awaited" or s.override_ground is not None:
            raise _refuse(f"request {s.request_id}: consent is not awaited "
                          f"(stage: {s.stage}, consent: {s.consent})")

    @workflow.update
    async def record_override(self, action: OverrideAction) -> Status:
        s = self._s
        s.override_ground, s.override_by, s.override_signature = action.ground, action.by, action.signature
        await self._event("safeguarding_override", actor=action.by, data={"ground": action.ground},
                          note=action.reason)
        await self._flush()
        self._publish()
        return self.status()

    @record_override.validator
    def _check_override(self, action: OverrideAction) -> None:
        s = self._s
        self._check_discloser(action.by, "by")
        self._check_signature(action, "override", [s.override_signature])
        if s.stage not in ("consent", "manager_review"):
            raise _refuse(f"request {s.request_id}: an override is recorded before the decision "
                          f"to share (stage: {s.stage})")
        if s.override_ground is not None:
            raise _refuse(f"request {s.request_id}: an override is already recorded")

    @workflow.update
    async def decide(self, action: DecisionAction) -> Status:
        s, intake = self._s, self._intake_snapshot
        stage = "retrospective_review" if s.stage == "retrospective_review" else "approval"
        s.decisions.append(DecisionEntry(
            at=workflow.now(), by=action.manager, decision=action.decision, kind=stage,
            items=action.items, reason_sha256=text_sha256(action.reason), signature=action.signature))
        notices = []
        if action.decision == "approve" and stage == "approval":
            s.approved_items = action.items or [i.id for i in intake.items]
        elif action.decision == "decline" and stage == "approval":
            s.declined = True
            s.outcome = "withdrawn" if s.consent == "withdrawn" else "not_shared"
            notices.append(Notice(to=[s.requested_by], kind="request_declined"))
        elif action.decision == "decline":
            notices.append(Notice(to=intake.dpo or [m for m, _ in intake.managers],
                                  kind="retrospective_review_concerns",
                                  awaiting="follow-up of the concerns raised on an emergency share"))
        await self._event(f"manager_{action.decision}", actor=action.manager,
                          data={"stage": stage, "items": len(action.items or [])},
                          note=action.reason, notices=notices)
        return await self._answer()

    @decide.validator
    def _check_decision(self, action: DecisionAction) -> None:
        s = self._s
        managers = [m for m, _ in self._intake_snapshot.managers] if s.intake else []
        if action.manager not in managers:
            raise _refuse(f"manager {action.manager} is not in the escalation chain of "
                          f"{s.disclosing_agency}")
        if action.manager == s.requested_by:
            raise _refuse("the requester cannot decide on their own request")
        self._check_signature(action, "decision", [d.signature for d in s.decisions])
        if action.decision == "comment":
            return
        if s.stage not in ("manager_review", "retrospective_review") or self._decided(s.stage):
            raise _refuse(f"request {s.request_id} is not awaiting a manager decision (stage: {s.stage})")
        if action.items is not None:
            if action.decision != "approve" or s.stage != "manager_review":
                raise _refuse("items: only an approval before sharing names items")
            known = {i.id for i in self._intake_snapshot.items}
            if not action.items or not set(action.items) <= known:
                raise _refuse(f"items: item ids of this request, from {sorted(known)}")
        if (action.decision == "approve" and s.stage == "manager_review"
                and s.consent in ("refused", "withdrawn", "timed_out") and s.override_ground is None):
            raise _refuse(f"request {s.request_id}: consent {s.consent}; approval needs a recorded "
                          "safeguarding override on a lawful ground (`safeshare override`)")
        if action.decision == "approve" and s.stage == "manager_review":
            self._check_withholding(action.items)

    def _check_withholding(self, approved: list[str] | None) -> None:
        """Golden rule 5: an item that mentions a protected person in a way no program can withhold
        is never approved. Approving every item (no `items`) of a request that has such an item is
        refused too, naming it: the manager then names the items approved, so that the decision
        record says exactly what was shared, never an "all" that quietly meant "all but these"."""
        items = self._intake_snapshot.items
        unsafe = [i.id for i in items if i.needs_manual_redaction and (approved is None or i.id in approved)]
        if not unsafe:
            return
        others = [i.id for i in items if not i.needs_manual_redaction]
        instead = f"approve the other items by name (items: {', '.join(others)}) or decline" if others else "decline"
        raise _refuse(f"{'item' if len(unsafe) == 1 else 'items'} {', '.join(unsafe)}: "
                      f"{'mentions' if len(unsafe) == 1 else 'mention'} a protected person in a way that "
                      f"cannot be withheld automatically; {instead}")

    @workflow.update
    async def acknowledge(self, action: AckAction) -> Status:
        s = self._s
        s.acknowledged_at, s.ack_signature = workflow.now(), action.signature
        was_overdue = s.overdue
        if s.stage in ("receipt", "retention"):  # the only overdue these stages have is the receipt's
            s.overdue = False
        if self._folded():
            self._ack_due = s.acknowledged_at
        else:
            await workflow.execute_activity_method(
                ShareActivities.mark_acknowledged, RequestAt(request_id=s.request_id, at=s.acknowledged_at),
                **_ACT)
        await self._event("bundle_acknowledged", actor=action.agency)
        if s.overdue != was_overdue or not self._lean():  # nothing else searchable changes here
            self._publish()
        if s.stage == "retention":  # earlier stages write the record when they end
            await self._write_record()
        return await self._answer()

    @acknowledge.validator
    def _check_ack(self, action: AckAction) -> None:
        s = self._s
        if action.agency != s.recipient_agency:
            raise _refuse(f"agency {action.agency} is not the recipient of request {s.request_id}")
        self._check_signature(action, "acknowledgement", [s.ack_signature])
        if s.receipt is None or s.stage == "deleted":
            raise _refuse(f"request {s.request_id}: no bundle awaits acknowledgement")
        if s.acknowledged_at is not None:
            raise _refuse(f"request {s.request_id}: already acknowledged")

    @workflow.update
    async def legal_hold(self, action: HoldAction) -> Status:
        self._s.held = action.hold
        # Holds replayed from histories recorded before `by` was kept stay the system's.
        await self._event("legal_hold_placed" if action.hold else "legal_hold_released",
                          actor=action.by or "system", note=action.reason)
        return await self._answer()

    @legal_hold.validator
    def _check_hold(self, action: HoldAction) -> None:
        s = self._s
        if action.by is None:
            raise _refuse("by: who places or releases the legal hold (a DPO or manager of "
                          f"{s.disclosing_agency}) is required")
        intake = self._intake_snapshot if s.intake else None
        # Retention is information governance: the discloser's DPO or its managers (DSL, IG lead).
        governors = (intake.dpo + [m for m, _ in intake.managers]) if intake else []
        if action.by not in governors:
            raise _refuse(f"by: {action.by} is not a DPO or manager of {s.disclosing_agency}; "
                          "only they place or release a legal hold")
        if s.stage == "deleted":
            raise _refuse(f"request {s.request_id}: content already deleted")
        if action.hold == s.held:
            raise _refuse(f"request {s.request_id}: " + ("already on legal hold" if s.held else "not on legal hold"))

    @workflow.update
    async def challenge(self, action: ChallengeAction) -> Status:
        s, intake = self._s, self._intake_snapshot
        s.challenges += 1
        tier1 = [m for m, t in intake.managers if t == min(t for _, t in intake.managers)]
        await self._event("challenge_recorded", actor=action.by, note=action.text, notices=[Notice(
            to=tier1 + intake.dpo, kind="challenge_recorded",
            awaiting="consideration of the subject's challenge")])
        return await self._answer()

    @challenge.validator
    def _check_challenge(self, action: ChallengeAction) -> None:
        s = self._s
        self._check_discloser(action.by, "by")
        if s.stage == "deleted":
            raise _refuse(f"request {s.request_id}: content already deleted")

    # --- helpers -------------------------------------------------------------------------------

    @property
    def _intake_snapshot(self) -> Intake:
        assert self._s.intake is not None
        return self._s.intake

    @property
    def _policy(self) -> StagePolicy:
        return self._intake_snapshot.stage_policy

    def _decided(self, stage: Stage) -> bool:
        kind = "retrospective_review" if stage == "retrospective_review" else "approval"
        return any(d.kind == kind and d.decision != "comment" for d in self._s.decisions)

    def _check_signature(self, action: Signed, what: str, used: Sequence[str | None]) -> None:
        """Only the signer's own key, over this request's action, once: else refused and audited."""
        s = self._s
        keys = self._intake_snapshot.signing_keys if s.intake else {}
        if action.signature is None:
            raise _refuse(f"{what}: unsigned; {action.signer} signs it with their key (--key)")
        if action.signer not in keys:
            raise _refuse(f"{what}: {action.signer} has no signing key in the directory")
        if not action.signature_valid(s.request_id, keys[action.signer]):
            raise _refuse(f"{what}: signature is not {action.signer}'s over this {what} of request "
                          f"{s.request_id} (altered, another key, or signed for another request)")
        if action.signature in used:
            raise _refuse(f"{what}: this signed {what} was already recorded (a replay)")
        if action.signed_at is not None and action.signed_at > workflow.now() + _CLOCK_SKEW:
            raise _refuse(f"{what}: signed_at is in the future; check the signer's clock")

    def _check_discloser(self, contact: str, field: str) -> None:
        s = self._s
        allowed = set(self._intake_snapshot.disclosing_contacts if s.intake else []) | {s.requested_by}
        if contact not in allowed:
            raise _refuse(f"{field}: {contact} is not a contact of {s.disclosing_agency} or the requester")

    def _folded(self) -> bool:
        """Whether this request runs on `folded-steps` code: checked (and marked) at its first
        audited step; the runs it continues as carry the answer in their state."""
        s = self._s
        if not s.folded_steps and workflow.patched(_FOLDED):
            s.folded_steps = True
        return s.folded_steps

    def _lean(self) -> bool:
        """Whether this request runs on `lean-history` code (or later): checked (and marked) once,
        in the first run that asks; the runs it continues as carry the answer in their state."""
        s = self._s
        if self._folded():
            return True
        if not s.lean_history and workflow.patched(_LEAN):
            s.lean_history = True
        return s.lean_history

    def _patched(self, patch_id: str) -> bool:
        """A patch older than `lean-history`, which implies it."""
        return self._lean() or workflow.patched(patch_id)

    async def _wait(self, condition: Callable[[], bool], timeout: timedelta | None) -> bool:
        """True if the condition held before the timeout (a durable timer; None: no timeout)."""
        await self._flush()
        self._run_waits_on = condition
        try:
            await workflow.wait_condition(condition, timeout=timeout)
        except TimeoutError:
            return False
        finally:
            self._run_waits_on = None
            self._run_woken += 1
        return True

    async def _enter(
        self, stage: Stage, what: str | None, who: Sequence[str], wait: timedelta | None, *,
        event: str | None = None, awaiting: str = "", data: dict | None = None,
    ) -> None:
        # The people awaited are notified before the status shows them as awaited.
        s = self._s
        deadline = workflow.now() + wait if wait is not None else None
        notices = [Notice(to=list(who), kind=event or f"{stage}_started", awaiting=awaiting,
                          deadline=deadline)] if who and awaiting else []
        await self._event(event or f"{stage}_started", data=data, notices=notices)
        if any(e.notices for e in self._pending):
            await self._flush()
        s.stage = stage
        s.awaiting = Awaiting(what=what, from_whom=list(who), deadline=deadline) if what else None
        self._publish()

    async def _event(
        self, event: str, *, actor: str = "system", data: dict | None = None,
        note: str | None = None, notices: Sequence[Notice] = (),
    ) -> None:
        s = self._s
        s.steps += 1
        step = f"{s.steps:05d}-{event}"
        inp = EventInput(request_id=s.request_id, step=step, event=event, actor=actor,
                         at=workflow.now(), data=data or {}, note=note, notices=list(notices))
        if self._folded():
            self._pending.append(inp)
            return
        await workflow.execute_activity_method(ShareActivities.record_event, inp, **_ACT)
        if notices and self._patched("send-notifications"):
            await self._notify(step)

    async def _answer(self) -> Status:
        """An update's answer, once its steps are stored. On `folded-steps` the run goes first: if
        the update ends its stage, the run's next batch stores both stages' steps, once."""
        waits_on, woken = self._run_waits_on, self._run_woken
        if self._folded() and waits_on is not None and waits_on():
            # The run wakes to this update: it goes on to its next batch before this answer is given.
            await workflow.wait_condition(lambda: self._run_woken > woken)
        await self._flush()
        return self.status()

    async def _flush(self) -> None:
        """Store what is pending in one activity (`folded-steps`); returns once every step recorded
        so far is stored, with its notifications sent or handed to their retries."""
        upto = self._s.steps
        if self._pending or self._record_due or self._ack_due:
            batch = StepsInput(request_id=self._s.request_id, events=self._pending,
                               record=self._record() if self._record_due else None,
                               acknowledged_at=self._ack_due)
            self._pending, self._record_due, self._ack_due = [], False, None
            self._storing.append(upto)
            try:
                result = await workflow.execute_activity_method(ShareActivities.record_steps, batch, **_ACT)
            finally:
                self._storing.remove(upto)
            for step in result.refused:
                await self._event("notification_failed", data={"step": step, "cause": NOTIFICATION_REFUSED})
            for step in result.unsent:
                await self._notify(step)
            if result.refused or result.unsent:
                await self._flush()  # the failures just recorded
        # Steps of ours may be in another coroutine's batch (an update's, taken while we waited).
        if any(last <= upto for last in self._storing):
            await workflow.wait_condition(lambda: all(last > upto for last in self._storing))

    async def _notify(self, step: str) -> None:
        try:
            await workflow.execute_activity_method(
                ShareActivities.send_notifications, NotifyInput(request_id=self._s.request_id, step=step),
                **_NOTIFY,
            )
        except ActivityError as err:
            # Refused by the receiver, or still unreachable after the retries: recorded, and the
            # outbox keeps the unsent rows for operators; the request goes on.
            await self._event("notification_failed", data={"step": step, "cause": _cause(err)})

    async def _write_record(self) -> None:
        if self._folded():
            self._record_due = True  # written as it stands at the next _flush
            return
        await workflow.execute_activity_method(ShareActivities.write_record, self._record(), **_ACT)

    def _record(self) -> DecisionRecord:
        s, intake = self._s, self._intake_snapshot
        sent = self._sendable() if s.receipt else []
        shared = [i for i in intake.items if i.id in sent]
        return DecisionRecord(
            request_id=s.request_id, outcome=s.outcome, direction=s.direction, urgency=s.urgency,
            purpose=s.purpose, disclosing_agency=s.disclosing_agency, recipient_agency=s.recipient_agency,
            requested_by=s.requested_by, lawful_basis=s.lawful_basis, special_condition=s.special_condition,
            consent_status=s.consent, override_ground=s.override_ground, override_by=s.override_by,
            override_signature=s.override_signature, ack_signature=s.ack_signature,
            decisions=s.decisions, categories_shared=sorted({i.category for i in shared}),
            items_shared=shared, withheld_identities=s.receipt.withheld_identities if s.receipt else 0,
            bundle_sha256=s.receipt.bundle_sha256 if s.receipt else None,
            shared_at=s.receipt.delivered_at if s.receipt else None, acknowledged_at=s.acknowledged_at,
            subject_informed=s.subject_informed, retention_until=intake.retention_until,
            deleted_at=s.deleted_at, updated_at=workflow.now(),
        )

    def _publish(self) -> None:
        s = self._s
        basis = f"override:{s.override_ground}" if s.override_ground else s.consent
        pairs = [
            STAGE.value_set(s.stage), OUTCOME.value_set(s.outcome), URGENCY.value_set(s.urgency),
            DISCLOSING.value_set(s.disclosing_agency), RECIPIENT.value_set(s.recipient_agency),
            CONSENT_BASIS.value_set(basis), TIER.value_set(s.escalation_tier),
            OVERDUE.value_set(s.overdue),
        ]
        if s.intake is not None:
            pairs.append(RETENTION_UNTIL.value_set(s.intake.retention_until))
        workflow.upsert_search_attributes(pairs)
