"""Every side effect of a share request. Each activity is idempotent under Temporal's retries."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

import crypto
from schemas import (
    DecisionRecord,
    DeliverInput,
    Directory,
    EventInput,
    Intake,
    ItemSummary,
    Notice,
    Policy,
    Receipt,
    RequestAt,
    ShareRequest,
    Tombstone,
)
from store import ContentDestroyed, OutgoingNotice, Store

log = structlog.get_logger("safeshare.activities")

WITHHELD = "[identity withheld]"


@dataclass
class ShareActivities:
    """Holds the worker's store, directory, policy and the agencies' signing keys it acts for."""

    store: Store
    directory: Directory
    policy: Policy
    agency_keys: Callable[[str], crypto.AgencyKeys]

    @activity.defn
    async def accept_request(self, request: ShareRequest) -> Intake:
        """Store the content encrypted and snapshot what the workflow needs from directory and policy."""
        discloser = self.directory.agency(request.disclosing_agency)
        recipient = self.directory.agency(request.recipient_agency)
        if discloser is None or recipient is None:
            # Checked at intake; reaching here means the directory changed since.
            raise ApplicationError("agency no longer in the directory", type="Directory", non_retryable=True)
        stored = await self.store.put_request(
            request.request_id, request.model_dump_json().encode(), activity.info().started_time
        )
        log.info("request_stored", request_id=request.request_id, new=stored)
        return Intake(
            items=[
                ItemSummary(
                    id=i.id, category=i.category, special_category=i.special_category, kind=i.kind,
                    sha256=hashlib.sha256(i.content.encode()).hexdigest(),
                )
                for i in request.items
            ],
            protected_third_parties=sum(t.protected for t in request.third_parties),
            managers=[(m.id, m.tier or 1) for m in discloser.managers()],
            disclosing_contacts=[c.id for c in discloser.contacts],
            recipient_contacts=[c.id for c in recipient.with_role("inbox") or recipient.contacts],
            recipient_managers=[c.id for c in recipient.managers()],
            dpo=[c.id for c in discloser.with_role("dpo")],
            stage_policy=self.policy.stages[request.urgency],
            escalation_tiers=self.policy.escalation_tiers,
            receipt_reminders=self.policy.receipt_reminders,
            retention_until=self.policy.retention_until(
                request.subject.date_of_birth, request.subject.looked_after
            ),
        )

    @activity.defn
    async def record_event(self, inp: EventInput) -> None:
        """Append the audit entry, store the note encrypted, queue the notifications: one transaction."""
        outgoing = [o for n in inp.notices for o in self._compose(inp, n)]
        try:
            done = await self.store.record_step(
                request_id=inp.request_id, step=inp.step, event=inp.event, actor=inp.actor,
                at=inp.at, data=inp.data, note=inp.note, notices=outgoing, now=inp.at,
            )
        except ContentDestroyed as err:
            raise ApplicationError(str(err), type="ContentDestroyed", non_retryable=True) from err
        if done:
            log.info(inp.event, request_id=inp.request_id, step=inp.step, actor=inp.actor, **inp.data)
            for o in outgoing:
                log.info("notification_queued", request_id=inp.request_id, kind=o.kind, to=o.to_contact)

    def _compose(self, inp: EventInput, notice: Notice) -> list[OutgoingNotice]:
        # Messages carry the request id, what is awaited and by when: never personal data.
        deadline = f" by {notice.deadline:%Y-%m-%d %H:%M} UTC" if notice.deadline else ""
        awaited = f"Awaited from you{deadline}: {notice.awaiting}." if notice.awaiting else ""
        body = (
            f"Safeshare request {inp.request_id}: {notice.kind.replace('_', ' ')}.\n{awaited}\n"
            f"See: safeshare status {inp.request_id}\n"
        )
        out = []
        for contact_id in dict.fromkeys(notice.to):
            found = self.directory.find_contact(contact_id)
            if found is None:
                log.warning("notification_unaddressable", request_id=inp.request_id, to=contact_id)
                continue
            out.append(
                OutgoingNotice(
                    dedupe_key=f"{inp.request_id}:{inp.step}:{notice.kind}:{contact_id}",
                    kind=notice.kind, to_contact=contact_id, address=found[1].email,
                    subject=f"[Safeshare] {inp.request_id}: {notice.kind.replace('_', ' ')}",
                    body=body,
                )
            )
        return out

    @activity.defn
    async def seal_and_deliver(self, inp: DeliverInput) -> Receipt:
        """Seal the approved items to the recipient, sign as the discloser, deliver once."""
        existing = await self.store.delivery(inp.request_id)
        if existing is None:
            try:
                request = ShareRequest.model_validate_json(await self.store.get_request(inp.request_id))
            except ContentDestroyed as err:
                raise ApplicationError(str(err), type="ContentDestroyed", non_retryable=True) from err
            recipient = self.directory.agency(inp.recipient_agency)
            if recipient is None or not recipient.safeguarding_role:
                raise ApplicationError(
                    "recipient no longer entitled to receive", type="Directory", non_retryable=True
                )
            content, withheld = bundle_content(request, inp.item_ids)
            bundle = crypto.seal(
                content,
                crypto.BundleHeader(inp.request_id, inp.disclosing_agency, inp.recipient_agency, recipient.hpke_suite),
                recipient.hpke_public_key,
                self.agency_keys(inp.disclosing_agency).signing,
            )
            existing = await self.store.deliver(
                request_id=inp.request_id, sender=inp.disclosing_agency, recipient=inp.recipient_agency,
                bundle=bundle, withheld_identities=withheld, at=inp.at,
            )
            log.info("bundle_delivered", request_id=inp.request_id, recipient=inp.recipient_agency,
                     items=len(inp.item_ids), withheld=withheld)
        return Receipt(
            bundle_sha256=existing["bundle_sha256"],
            delivered_at=existing["delivered_at"],
            withheld_identities=existing["withheld_identities"],
        )

    @activity.defn
    async def write_record(self, record: DecisionRecord) -> None:
        await self.store.put_record(record.request_id, record.model_dump_json(), record.updated_at)
        log.info("record_written", request_id=record.request_id, outcome=record.outcome)

    @activity.defn
    async def mark_acknowledged(self, inp: RequestAt) -> None:
        await self.store.mark_acknowledged(inp.request_id, inp.at)

    @activity.defn
    async def destroy_content(self, inp: RequestAt) -> Tombstone:
        await self.store.destroy(inp.request_id, inp.at)
        log.info("content_destroyed", request_id=inp.request_id)
        return Tombstone(request_id=inp.request_id, destroyed_at=inp.at)


def bundle_content(request: ShareRequest, item_ids: list[str]) -> tuple[bytes, int]:
    """The approved items only, with protected third parties' names withheld (golden rule 5)."""
    protected = [t for t in request.third_parties if t.protected]
    pattern = (
        re.compile("|".join(re.escape(t.name) for t in protected), re.IGNORECASE) if protected else None
    )
    wanted = set(item_ids)
    items = []
    for item in request.items:
        if item.id not in wanted:
            continue
        text = pattern.sub(WITHHELD, item.content) if pattern else item.content
        items.append(item.model_copy(update={"content": text}).model_dump(mode="json"))
    content = {
        "request_id": request.request_id,
        "disclosing_agency": request.disclosing_agency,
        "recipient_agency": request.recipient_agency,
        "purpose": request.purpose.model_dump(mode="json"),
        "lawful_basis": request.lawful_basis,
        "special_condition": request.special_condition,
        "subject": request.subject.model_dump(mode="json"),
        "third_parties": [t.model_dump(mode="json") for t in request.third_parties if not t.protected],
        "withheld_identities": len(protected),
        "items": items,
    }
    return json.dumps(content, sort_keys=True).encode(), len(protected)
