"""Intake: the request's content into the store, and the snapshot the workflow runs on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

import crypto
from schemas import (
    AcceptInput,
    Agency,
    Directory,
    Intake,
    IntakeError,
    ItemSummary,
    Policy,
    ShareRequest,
    Withholder,
    submitter_key,
)
from store import ContentDestroyed, NotFound, Store

from . import _metrics as metrics

log = structlog.get_logger("safeshare.activities")

# Audit events that do not use a request id up: what was refused never started a request.
REFUSALS = frozenset({"action_refused", "submission_refused"})
CLOCK_SKEW = timedelta(minutes=5)


@dataclass(frozen=True)
class IntakeActivities:
    store: Store
    directory: Directory
    policy: Policy
    child_index_secret: bytes  # the deployment's key for the child index's keyed hashes

    @activity.defn
    async def accept_request(self, inp: AcceptInput | ShareRequest) -> Intake:
        """Check that the request is its submitter's own act and that its id is new, then store
        the content encrypted under a new data key, once (a retry finds it stored), and snapshot
        what the workflow needs from the directory and the policy. (A bare ShareRequest is what
        a build before signed submissions scheduled: refused as unsigned.)"""
        inp = inp if isinstance(inp, AcceptInput) else AcceptInput(request=inp)
        request = inp.request
        discloser = self.directory.agency(request.disclosing_agency)
        recipient = self.directory.agency(request.recipient_agency)
        if discloser is None or recipient is None:
            # Checked at intake; reaching here means the directory changed since.
            raise ApplicationError("agency no longer in the directory", type="Directory", non_retryable=True)
        content = request.model_dump_json().encode()
        await self._check_submission(inp, content)
        stored = await self.store.put_request(request.request_id, content, activity.info().started_time)
        if request.subject.nhs_number is not None:
            # Only its keyed hash leaves this activity: never the identifier, in the store or a log.
            await self.store.index_child(
                request.request_id, crypto.child_index_key(self.child_index_secret, request.subject.nhs_number),
                disclosing=request.disclosing_agency, recipient=request.recipient_agency,
                at=activity.info().started_time)
        log.info("request_stored", request_id=request.request_id, new=stored)
        if stored:
            metrics.request_accepted(request.urgency, request.direction)
        return self._snapshot(request, discloser, recipient)

    async def _check_submission(self, inp: AcceptInput, content: bytes) -> None:
        """Refused, audited and never stored: a submission not signed by the requesting agency or
        its requester over this content, and a request id already used (by a request that got
        past intake, or one whose stored content differs), so that a closed request's id never
        starts a new run and no signed action of it can be replayed onto one."""
        request, sub = inp.request, inp.submission
        rid, now = request.request_id, activity.info().started_time
        try:
            key = submitter_key(request, self.directory, sub.by if sub else None)
            if sub is None or not crypto.signed_by(sub, rid, request.digest(), key):
                raise IntakeError("submission", f"a signature by {sub.by if sub else 'the submitter'} over "
                                  "this request's content (altered, another key, or another request)")
            if sub.signed_at is not None and sub.signed_at > now + CLOCK_SKEW:
                raise IntakeError("submission.signed_at", "not in the future; check the signer's clock")
            if any(e.event not in REFUSALS for e in await self.store.audit_trail(rid)):
                raise IntakeError("request_id", "a new id: this one was used by another request, and a "
                                  "request id is never reused")
            if await self._stored(rid) not in (None, content):
                raise IntakeError("request_id", "a new id: this one was used by a request with other content")
        except IntakeError as refused:
            info = activity.info()
            await self.store.record_step(
                request_id=rid, step=f"submission-refused-{info.workflow_run_id}", event="submission_refused",
                actor=sub.by if sub else "unsigned", at=now, data={"reason": str(refused)}, note=None,
                notices=[], now=now)
            log.warning("submission_refused", request_id=rid, field=refused.field)
            raise ApplicationError(str(refused), type="SubmissionRefused", non_retryable=True) from None

    async def _stored(self, request_id: str) -> bytes | None:
        """The content stored under this id by an earlier attempt, if any."""
        try:
            return await self.store.get_request(request_id)
        except NotFound:
            return None
        except ContentDestroyed:
            raise IntakeError("request_id", "a new id: this one was used by a request since deleted") from None

    def _snapshot(self, request: ShareRequest, discloser: Agency, recipient: Agency) -> Intake:
        """Ids, categories, hashes, the manager chain, the stage policy, the retention date: from
        here on the workflow carries no personal data."""
        withhold = Withholder.for_request(request)
        return Intake(
            items=[
                ItemSummary(
                    id=i.id, category=i.category, special_category=i.special_category, kind=i.kind,
                    sha256=hashlib.sha256(i.content.encode()).hexdigest(),
                    withholds_identity=(w := withhold(i.content)).mentions_protected,
                    needs_manual_redaction=not w.safe,
                )
                for i in request.items
            ],
            protected_third_parties=sum(t.protected for t in request.third_parties),
            managers=[(m.id, m.tier or 1) for m in discloser.managers()],
            disclosing_contacts=[c.id for c in discloser.contacts],
            recipient_contacts=[c.id for c in recipient.with_role("inbox") or recipient.contacts],
            recipient_managers=[c.id for c in recipient.managers()],
            dpo=[c.id for c in discloser.with_role("dpo")],
            stage_policy=(stage := self.policy.stages[request.urgency]),
            # Bank holidays resolved here, as dates: the workflow never consults the package.
            rag_timescales=self.policy.rag,
            calendar=self.policy.working_hours.calendar(activity.info().scheduled_time.date())
            if stage.working_hours or self.policy.rag else None,
            escalation_tiers=self.policy.escalation_tiers,
            receipt_reminders=self.policy.receipt_reminders,
            retention_until=self.policy.retention_until(
                request.subject.date_of_birth, request.subject.looked_after, activity.info().scheduled_time.date()
            ),
            signing_keys={
                **{c.id: c.signing_public_key for c in discloser.contacts if c.signing_public_key},
                # An inbound request's requester (a recipient's practitioner) signs its consent and challenges.
                **{c.id: c.signing_public_key for c in recipient.contacts
                   if c.id == request.requested_by and c.signing_public_key},
                recipient.id: recipient.signing_public_key,
            },
            recipient_delivery=recipient.delivery,
        )
