"""Intake: the request's content into the store, and the snapshot the workflow runs on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

import crypto
from schemas import Agency, Directory, Intake, ItemSummary, Policy, ShareRequest, Withholder
from store import Store

from . import _metrics as metrics

log = structlog.get_logger("safeshare.activities")


@dataclass(frozen=True)
class IntakeActivities:
    store: Store
    directory: Directory
    policy: Policy
    child_index_secret: bytes  # the deployment's key for the child index's keyed hashes

    @activity.defn
    async def accept_request(self, request: ShareRequest) -> Intake:
        """Store the content encrypted under a new data key, once (a retry finds it stored), and
        snapshot what the workflow needs from the directory and the policy."""
        discloser = self.directory.agency(request.disclosing_agency)
        recipient = self.directory.agency(request.recipient_agency)
        if discloser is None or recipient is None:
            # Checked at intake; reaching here means the directory changed since.
            raise ApplicationError("agency no longer in the directory", type="Directory", non_retryable=True)
        stored = await self.store.put_request(
            request.request_id, request.model_dump_json().encode(), activity.info().started_time
        )
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
                recipient.id: recipient.signing_public_key,
            },
            recipient_delivery=recipient.delivery,
        )
