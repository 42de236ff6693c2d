"""Safeshare's activities: every side effect of a share request, by kind (intake, recording and
notifying, delivery, disposal), each class holding only what its activities use."""

from collections.abc import Callable
from typing import Any

import crypto
from schemas import (
    Directory,
    Policy,
)
from store import Store

from ._channels import (
    SIGNATURE_HEADER,
    ChannelError,
    Channels,
    MailDirSender,
    Rejected,
    SmtpSender,
    Unavailable,
    WebhookSender,
    idempotency_key,
    message_id,
)
from ._delivery import DeliveryActivities, bundle_content
from ._disposal import DisposalActivities
from ._errors import StoreFailures
from ._intake import IntakeActivities
from ._notify import NOTIFICATION_REFUSED, NotifyActivities
from ._record import RecordActivities
from ._tasks import beside


def worker_activities(
    *, store: Store, directory: Directory, policy: Policy, agency_keys: Callable[[str], crypto.AgencyKeys],
    history_keys: crypto.HistoryKeys, channels: Channels, child_index_secret: bytes,
) -> list[Callable[..., Any]]:
    """Every activity the worker registers, built from the worker's dependencies."""
    notify = NotifyActivities(store, channels)
    intake = IntakeActivities(store, directory, policy, child_index_secret)
    record = RecordActivities(store, directory, notify)
    delivery = DeliveryActivities(store, directory, agency_keys, channels.webhook)
    disposal = DisposalActivities(store, history_keys)
    return [
        intake.accept_request, record.record_steps, notify.send_notifications, delivery.seal_and_deliver,
        delivery.push_bundle, delivery.recall_bundle, disposal.dispose, disposal.shred_history_key,
    ]


__all__ = [
    "NOTIFICATION_REFUSED",
    "SIGNATURE_HEADER",
    "ChannelError",
    "Channels",
    "DeliveryActivities",
    "DisposalActivities",
    "IntakeActivities",
    "MailDirSender",
    "NotifyActivities",
    "RecordActivities",
    "Rejected",
    "SmtpSender",
    "StoreFailures",
    "Unavailable",
    "WebhookSender",
    "beside",
    "bundle_content",
    "idempotency_key",
    "message_id",
    "worker_activities",
]
