"""Notifications: what each message says, and sending a step's queued messages by their channels."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from schemas import Directory, EventInput, Notice, Notification, NotifyInput, NotifyResult
from store import Store

from ._channels import Channels, Rejected, Unavailable
from ._tasks import attempt_time

log = structlog.get_logger("safeshare.activities")

# The failure type of a notification the receiver refused (permanent: not retried).
NOTIFICATION_REFUSED = "NotificationRefused"
# Notices about free text say where it can be read, never the text: an e-mail or webhook leaves
# the system and is not shredded with the request's key (golden rule 7: reasons are recorded).
RECORDED = {
    "request_declined": "The reasons for the decision are",
    "retrospective_review_concerns": "The reviewer's reasons are",
    "challenge_recorded": "The challenge's text is",
}


def compose(directory: Directory, step: EventInput, notice: Notice) -> list[Notification]:
    """One message per addressee the directory can reach. A message carries the request id, what is
    awaited and by when: never personal data."""
    rid = step.request_id
    what = notice.kind.replace("_", " ")
    deadline = f" by {notice.deadline:%Y-%m-%d %H:%M} UTC" if notice.deadline else ""
    awaited = f"Awaited from you{deadline}: {notice.awaiting}." if notice.awaiting else ""
    recorded = (f"\n{RECORDED[notice.kind]} recorded and available through `safeshare records {rid}`."
                if notice.kind in RECORDED else "")
    body = f"Safeshare request {rid}: {what}.\n{awaited}{recorded}\nSee: safeshare status {rid}\n"
    out = []
    for contact_id in dict.fromkeys(notice.to):
        found = directory.find_contact(contact_id)
        if found is None:
            log.warning("notification_unaddressable", request_id=rid, to=contact_id)
            continue
        contact = found[1]
        webhook = contact.webhook_url if contact.notify == "webhook" else None
        out.append(Notification(
            dedupe_key=f"{rid}:{step.step}:{notice.kind}:{contact_id}", request_id=rid, kind=notice.kind,
            to_contact=contact_id, channel="webhook" if webhook else "email", address=webhook or contact.email,
            subject=f"[Safeshare] {rid}: {what}", body=body,
        ))
    return out


@dataclass(frozen=True)
class NotifyActivities:
    """Sends what the outbox holds; `record_steps` makes its prompt first try through `send_queued`."""

    store: Store
    channels: Channels

    @activity.defn
    async def send_notifications(self, inp: NotifyInput) -> NotifyResult:
        """Send a step's queued notifications; those sent are marked so, even when a later one fails,
        so a retry sends only the rest. A crash between sending and marking resends with the same
        Message-ID / Idempotency-Key, which receivers dedupe on."""
        try:
            sent, refused = await self.send_queued(inp.request_id, inp.step, prompt=False)
        except Unavailable as err:
            raise ApplicationError(str(err), type="ChannelUnavailable") from None
        if refused:
            raise ApplicationError(
                f"request {inp.request_id}: {refused} notification(s) refused by the receiver",
                type=NOTIFICATION_REFUSED, non_retryable=True,
            )
        return NotifyResult(sent=sent)

    async def send_queued(
        self, request_id: str, step: str, *, prompt: bool, queued: Sequence[Notification] | None = None,
    ) -> tuple[int, int]:
        """(sent, refused) of a step's unsent notifications: `queued`, when the caller has just put
        them in the outbox (none can have been sent yet), else what the outbox holds unsent. A
        refusal is final and marked failed; an unavailable channel raises, for the caller's retries
        (`prompt`: the first try, which leaves them to `send_notifications`). What was sent is
        marked in one statement, even when a later message raises."""
        refused, sent = 0, []
        try:
            for msg in queued if queued is not None else await self.store.unsent(request_id, step):
                where = {"request_id": request_id, "kind": msg.kind, "to": msg.to_contact, "channel": msg.channel}
                try:
                    await self.channels.send(msg)
                except Rejected as err:
                    await self.store.mark_failed(msg.dedupe_key, attempt_time(), str(err))
                    log.warning("notification_refused", **where, reason=str(err))
                    refused += 1
                    continue
                except Unavailable as err:
                    if not prompt:
                        log.warning("notification_unavailable", **where, reason=str(err),
                                    attempt=activity.info().attempt)
                    raise
                log.info("notification_sent", **where)
                sent.append(msg.dedupe_key)
        finally:
            # Shielded: a prompt try cut off by its time bound still marks what it had sent.
            await asyncio.shield(self.store.mark_sent(sent, attempt_time()))
        return len(sent), refused
