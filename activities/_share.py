"""Every side effect of a share request. Each activity is idempotent under Temporal's retries."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

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
    NotifyInput,
    NotifyResult,
    Policy,
    PushInput,
    PushResult,
    Receipt,
    RequestAt,
    ShareRequest,
    StepsInput,
    StepsResult,
    Tombstone,
    Withholder,
    workflow_id,
)
from store import AuditStep, ContentDestroyed, OutgoingNotice, Store

from . import _metrics as metrics
from ._channels import Channels, Outgoing, Rejected, Unavailable
from ._tasks import beside

log = structlog.get_logger("safeshare.activities")

# The prompt try at sending a step's notifications, inside `record_steps`' 15 s.
PROMPT_SEND_SECONDS = 5.0
# The failure type of a notification the receiver refused (permanent: not retried).
NOTIFICATION_REFUSED = "NotificationRefused"
# Notices about free text say where it can be read, never the text: an e-mail or webhook leaves
# the system and is not shredded with the request's key (golden rule 7: reasons are recorded).
RECORDED = {
    "request_declined": "The reasons for the decision are",
    "retrospective_review_concerns": "The reviewer's reasons are",
    "challenge_recorded": "The challenge's text is",
}


@dataclass
class ShareActivities:
    """Holds the worker's store, directory, policy and the agencies' signing keys it acts for."""

    store: Store
    directory: Directory
    policy: Policy
    agency_keys: Callable[[str], crypto.AgencyKeys]
    history_keys: crypto.HistoryKeys
    channels: Channels

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
        if stored:
            metrics.request_accepted(request.urgency, request.direction)
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
            stage_policy=self.policy.stages[request.urgency],
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

    @activity.defn
    async def record_event(self, inp: EventInput) -> None:
        """Append the audit entry, store the note encrypted, queue the notifications: one transaction."""
        await self._record(StepsInput(request_id=inp.request_id, events=[inp]), send=False)

    @activity.defn
    async def record_steps(self, inp: StepsInput) -> StepsResult:
        """What the workflow has to record since it last did, in one transaction (`folded-steps`):
        audited steps with their notes and notifications, the decision record, an acknowledgement.
        Then one prompt try at sending the notifications queued; the steps whose notifications
        are not all sent are returned for `send_notifications`, which retries."""
        return await self._record(inp, send=True)

    async def _record(self, inp: StepsInput, *, send: bool) -> StepsResult:
        by_step = {e.step: e for e in inp.events}
        outgoing = {e.step: [o for n in e.notices for o in self._compose(e, n)] for e in inp.events}
        record = (inp.record.model_dump_json(), inp.record.updated_at) if inp.record else None
        now = inp.events[-1].at if inp.events else (inp.record.updated_at if inp.record else inp.acknowledged_at)
        try:
            done = await self.store.record_steps(
                inp.request_id,
                [AuditStep(step=e.step, event=e.event, actor=e.actor, at=e.at, data=e.data, note=e.note,
                           notices=outgoing[e.step]) for e in inp.events],
                record=record, acknowledged_at=inp.acknowledged_at, now=now,
            )
        except ContentDestroyed as err:
            raise ApplicationError(str(err), type="ContentDestroyed", non_retryable=True) from err
        for step in done:
            e = by_step[step]
            log.info(e.event, request_id=inp.request_id, step=step, actor=e.actor, **e.data)
            metrics.event_recorded(e.event)
            for o in outgoing[step]:
                log.info("notification_queued", request_id=inp.request_id, kind=o.kind, to=o.to_contact)
        if record:
            log.info("record_written", request_id=inp.request_id, outcome=inp.record.outcome)
        notified = [e.step for e in inp.events if outgoing[e.step]]
        if not send:
            return StepsResult(unsent=notified)
        refused = []
        for n, step in enumerate(notified):
            try:
                # Bounded well inside the activity's timeout: a slow channel is left to the retries.
                _, failed = await asyncio.wait_for(self._send_queued(inp.request_id, step, prompt=True),
                                                   PROMPT_SEND_SECONDS)
            except (Unavailable, TimeoutError) as err:
                log.info("notification_deferred", request_id=inp.request_id, step=step, cause=type(err).__name__)
                return StepsResult(unsent=notified[n:], refused=refused)
            if failed:
                refused.append(step)
        return StepsResult(refused=refused)

    def _compose(self, inp: EventInput, notice: Notice) -> list[OutgoingNotice]:
        # Messages carry the request id, what is awaited and by when: never personal data.
        deadline = f" by {notice.deadline:%Y-%m-%d %H:%M} UTC" if notice.deadline else ""
        awaited = f"Awaited from you{deadline}: {notice.awaiting}." if notice.awaiting else ""
        recorded = (f"\n{RECORDED[notice.kind]} recorded and available through `safeshare records "
                    f"{inp.request_id}`." if notice.kind in RECORDED else "")
        body = (
            f"Safeshare request {inp.request_id}: {notice.kind.replace('_', ' ')}.\n{awaited}{recorded}\n"
            f"See: safeshare status {inp.request_id}\n"
        )
        out = []
        for contact_id in dict.fromkeys(notice.to):
            found = self.directory.find_contact(contact_id)
            if found is None:
                log.warning("notification_unaddressable", request_id=inp.request_id, to=contact_id)
                continue
            contact = found[1]
            webhook = contact.webhook_url if contact.notify == "webhook" else None
            out.append(
                OutgoingNotice(
                    dedupe_key=f"{inp.request_id}:{inp.step}:{notice.kind}:{contact_id}",
                    kind=notice.kind, to_contact=contact_id, channel="webhook" if webhook else "email",
                    address=webhook or contact.email,
                    subject=f"[Safeshare] {inp.request_id}: {notice.kind.replace('_', ' ')}",
                    body=body,
                )
            )
        return out

    @activity.defn
    async def send_notifications(self, inp: NotifyInput) -> NotifyResult:
        """Send a step's queued notifications, each marked sent as soon as it is, so a retry sends
        only the rest; a crash between sending and marking resends with the same Message-ID /
        Idempotency-Key, which receivers dedupe on."""
        try:
            sent, refused = await self._send_queued(inp.request_id, inp.step, prompt=False)
        except Unavailable as err:
            raise ApplicationError(str(err), type="ChannelUnavailable") from None
        if refused:
            raise ApplicationError(
                f"request {inp.request_id}: {refused} notification(s) refused by the receiver",
                type=NOTIFICATION_REFUSED, non_retryable=True,
            )
        return NotifyResult(sent=sent)

    async def _send_queued(self, request_id: str, step: str, *, prompt: bool) -> tuple[int, int]:
        """(sent, refused) of a step's unsent notifications. A refusal is final and marked failed;
        an unavailable channel raises, for the caller's retries (`prompt`: the first try, which
        leaves them to `send_notifications`)."""
        refused = sent = 0
        for row in await self.store.unsent(request_id, step):
            msg = Outgoing(
                dedupe_key=row["dedupe_key"], request_id=row["request_id"], kind=row["kind"],
                channel=row["channel"], address=row["address"], subject=row["subject"], body=row["body"],
            )
            where = {"request_id": request_id, "kind": msg.kind, "to": row["to_contact"], "channel": msg.channel}
            try:
                await self.channels.send(msg)
            except Rejected as err:
                await self.store.mark_failed(row["id"], _now(), str(err))
                log.warning("notification_refused", **where, reason=str(err))
                refused += 1
                continue
            except Unavailable as err:
                if not prompt:
                    log.warning("notification_unavailable", **where, reason=str(err),
                                attempt=activity.info().attempt)
                raise
            await self.store.mark_sent(row["id"], _now())
            log.info("notification_sent", **where)
            sent += 1
        return sent, refused

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
            metrics.bundle_delivered(recipient.hpke_suite)
        return Receipt(
            bundle_sha256=existing["bundle_sha256"],
            delivered_at=existing["delivered_at"],
            withheld_identities=existing["withheld_identities"],
        )

    @activity.defn
    async def push_bundle(self, inp: PushInput) -> PushResult:
        """POST the stored bundle to a webhook recipient, with the request id as Idempotency-Key:
        one delivery per request however often this is retried, even after a worker dies mid-send."""
        recipient = self.directory.agency(inp.recipient_agency)
        if recipient is None or recipient.delivery != "webhook" or recipient.webhook_url is None:
            return PushResult(pushed=False)
        row = await self.store.delivery(inp.request_id)
        if row is None or row["recipient"] != inp.recipient_agency:
            raise ApplicationError(f"request {inp.request_id}: nothing delivered to push", type="NotDelivered",
                                   non_retryable=True)
        if row["pushed_at"] is not None:
            return PushResult(pushed=True, pushed_at=row["pushed_at"])
        if row["bundle"] is None:
            raise ApplicationError(f"request {inp.request_id}: content destroyed at retention expiry",
                                   type="ContentDestroyed", non_retryable=True)
        headers = {"X-Safeshare-Request": inp.request_id, "X-Safeshare-Sender": row["sender"],
                   "X-Safeshare-Bundle-SHA256": row["bundle_sha256"]}
        try:
            async with _heartbeating():
                await self.channels.webhook.post(recipient.webhook_url, row["bundle"], "application/octet-stream",
                                                 inp.request_id, headers)
        except Rejected as err:
            log.warning("bundle_push_refused", request_id=inp.request_id, recipient=inp.recipient_agency,
                        reason=str(err))
            raise ApplicationError(f"request {inp.request_id}: {err}", type="DeliveryRefused",
                                   non_retryable=True) from None
        except Unavailable as err:
            log.warning("bundle_push_unavailable", request_id=inp.request_id, recipient=inp.recipient_agency,
                        reason=str(err), attempt=activity.info().attempt)
            raise ApplicationError(str(err), type="ChannelUnavailable") from None
        at = _now()
        await self.store.mark_pushed(inp.request_id, at)
        log.info("bundle_pushed", request_id=inp.request_id, recipient=inp.recipient_agency)
        return PushResult(pushed=True, pushed_at=at)

    @activity.defn
    async def write_record(self, record: DecisionRecord) -> None:
        await self._record(StepsInput(request_id=record.request_id, record=record), send=False)

    @activity.defn
    async def mark_acknowledged(self, inp: RequestAt) -> None:
        await self.store.mark_acknowledged(inp.request_id, inp.at)

    @activity.defn
    async def destroy_content(self, inp: RequestAt) -> Tombstone:
        await self.store.destroy(inp.request_id, inp.at)
        log.info("content_destroyed", request_id=inp.request_id)
        return Tombstone(request_id=inp.request_id, destroyed_at=inp.at)

    @activity.defn
    async def retire_history_key(self, inp: RequestAt) -> None:
        await self.history_keys.retire(workflow_id(inp.request_id))

    @activity.defn
    async def dispose(self, inp: RequestAt) -> Tombstone:
        """At retention expiry (`folded-steps`): destroy the content, then retire the request's
        history key; both steps are idempotent, so a retry redoes whichever did not finish."""
        tomb = await self.destroy_content(inp)
        await self.retire_history_key(inp)
        return tomb

    @activity.defn
    async def shred_history_key(self, inp: RequestAt) -> None:
        """After this, no copy of the request's earlier Temporal history can be decrypted."""
        await self.history_keys.destroy(workflow_id(inp.request_id))
        log.info("history_key_destroyed", request_id=inp.request_id)


def _now() -> datetime:
    # The server's clock for this attempt: real time in production, skipped time in tests.
    return activity.info().current_attempt_scheduled_time


@contextlib.asynccontextmanager
async def _heartbeating(every: timedelta = timedelta(seconds=2)) -> AsyncIterator[None]:
    """Heartbeat while a send is in flight, so a worker that dies mid-send is noticed within the
    activity's heartbeat timeout rather than its (longer) start-to-close timeout."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every.total_seconds())

    async with beside(beat()):
        yield


def bundle_content(request: ShareRequest, item_ids: list[str]) -> tuple[bytes, int]:
    """The approved items only, with protected third parties' names withheld (golden rule 5)."""
    withhold = Withholder.for_request(request)
    wanted = set(item_ids)
    items, unsafe = [], []
    for item in request.items:
        if item.id not in wanted:
            continue
        text = withhold(item.content)
        if not text.safe:
            unsafe.append(item.id)
        items.append(item.model_copy(update={"content": text.text}).model_dump(mode="json"))
    if unsafe:
        # The workflow never asks for these (intake flagged them, the manager cannot approve
        # them); reaching here means that was bypassed, and retrying cannot make them safe.
        raise ApplicationError(
            f"items {', '.join(unsafe)}: mention a protected person in a way that cannot be withheld "
            "automatically; not sealed", type="UnsafeToShare", non_retryable=True,
        )
    protected = [t for t in request.third_parties if t.protected]
    content = {
        "request_id": request.request_id,
        "disclosing_agency": request.disclosing_agency,
        "recipient_agency": request.recipient_agency,
        # Free text the recipient reads too, and that cannot be left out: withheld strictly.
        "purpose": {**request.purpose.model_dump(mode="json"),
                    "statement": withhold(request.purpose.statement, strict=True).text},
        "lawful_basis": request.lawful_basis,
        "special_condition": request.special_condition,
        "subject": request.subject.model_dump(mode="json"),
        "third_parties": [
            {**t.model_dump(mode="json"), "relationship": withhold(t.relationship, strict=True).text}
            for t in request.third_parties if not t.protected
        ],
        "withheld_identities": len(protected),
        "items": items,
    }
    return json.dumps(content, sort_keys=True).encode(), len(protected)
