"""Delivery: the approved items sealed into the recipient's inbox, and pushed to a webhook recipient."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

import crypto
from schemas import (
    DeliverInput,
    Directory,
    PushInput,
    PushResult,
    Recalled,
    Receipt,
    RequestAt,
    ShareRequest,
    Withholder,
)
from store import ContentDestroyed, Store

from . import _metrics as metrics
from ._channels import Rejected, Unavailable, WebhookSender
from ._tasks import attempt_time, heartbeating

log = structlog.get_logger("safeshare.activities")


@dataclass(frozen=True)
class DeliveryActivities:
    store: Store
    directory: Directory
    agency_keys: Callable[[str], crypto.AgencyKeys]  # the keys of the agencies this worker signs for
    webhook: WebhookSender

    @activity.defn
    async def seal_and_deliver(self, inp: DeliverInput) -> Receipt:
        """Seal the approved items to the recipient, sign as the discloser, and put the bundle in
        the recipient's inbox once: a retry finds it there and answers with the same receipt."""
        delivery = await self.store.delivery(inp.request_id)
        if delivery is None:
            request = ShareRequest.model_validate_json(await self.store.get_request(inp.request_id))
            recipient = self.directory.agency(inp.recipient_agency)
            if recipient is None or not recipient.safeguarding_role:
                raise ApplicationError("recipient no longer entitled to receive", type="Directory",
                                       non_retryable=True)
            content, withheld = bundle_content(request, inp.item_ids)
            bundle = crypto.seal(
                content,
                crypto.BundleHeader(inp.request_id, inp.disclosing_agency, inp.recipient_agency, recipient.hpke_suite),
                recipient.hpke_public_key,
                self.agency_keys(inp.disclosing_agency).signing,
            )
            delivery = await self.store.deliver(
                request_id=inp.request_id, sender=inp.disclosing_agency, recipient=inp.recipient_agency,
                bundle=bundle, withheld_identities=withheld, at=inp.at,
            )
            log.info("bundle_delivered", request_id=inp.request_id, recipient=inp.recipient_agency,
                     items=len(inp.item_ids), withheld=withheld)
            metrics.bundle_delivered(recipient.hpke_suite)
        return Receipt(bundle_sha256=delivery.bundle_sha256, delivered_at=delivery.delivered_at,
                       withheld_identities=delivery.withheld_identities)

    @activity.defn
    async def recall_bundle(self, inp: RequestAt) -> Recalled:
        """Take a shared bundle out of the recipient's inbox, saying whether they had downloaded it.
        Repeatable: a retry finds it recalled and gives the same answer."""
        recalled = await self.store.recall(inp.request_id, inp.at)
        log.info("bundle_recalled", request_id=inp.request_id, downloaded=recalled.downloaded)
        return recalled

    @activity.defn
    async def push_bundle(self, inp: PushInput) -> PushResult:
        """POST the stored bundle to a webhook recipient, with the request id as Idempotency-Key:
        one delivery per request however often this is retried, even after a worker dies mid-send.
        Marking the inbox row pushed is this push's own bookkeeping: a retry after it sends nothing."""
        recipient = self.directory.agency(inp.recipient_agency)
        if recipient is None or recipient.delivery != "webhook" or recipient.webhook_url is None:
            return PushResult(pushed=False)
        row = await self.store.delivery(inp.request_id)
        if row is None or row.recipient != inp.recipient_agency:
            raise ApplicationError(f"request {inp.request_id}: nothing delivered to push", type="NotDelivered",
                                   non_retryable=True)
        if row.pushed_at is not None:
            return PushResult(pushed=True, pushed_at=row.pushed_at)
        if row.bundle is None:
            raise ContentDestroyed(inp.request_id, row.destroyed_at)
        where = {"request_id": inp.request_id, "recipient": inp.recipient_agency}
        headers = {"X-Safeshare-Request": inp.request_id, "X-Safeshare-Sender": row.sender,
                   "X-Safeshare-Bundle-SHA256": row.bundle_sha256}
        try:
            async with heartbeating():
                await self.webhook.post(recipient.webhook_url, row.bundle, "application/octet-stream",
                                        inp.request_id, headers)
        except Rejected as err:
            log.warning("bundle_push_refused", **where, reason=str(err))
            raise ApplicationError(f"request {inp.request_id}: {err}", type="DeliveryRefused",
                                   non_retryable=True) from None
        except Unavailable as err:
            log.warning("bundle_push_unavailable", **where, reason=str(err), attempt=activity.info().attempt)
            raise ApplicationError(str(err), type="ChannelUnavailable") from None
        at = attempt_time()
        await self.store.mark_pushed(inp.request_id, at)
        log.info("bundle_pushed", **where)
        return PushResult(pushed=True, pushed_at=at)


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
