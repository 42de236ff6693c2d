"""Safeshare's activities: every side effect of a share request."""

from schemas import WITHHELD  # defined with the rule that withholds names; still public here

from ._channels import (
    SIGNATURE_HEADER,
    ChannelError,
    Channels,
    MailDirSender,
    Outgoing,
    Rejected,
    SmtpSender,
    Unavailable,
    WebhookSender,
    idempotency_key,
    message_id,
)
from ._errors import StoreFailures
from ._share import NOTIFICATION_REFUSED, ShareActivities, bundle_content
from ._tasks import beside

__all__ = [
    "NOTIFICATION_REFUSED",
    "SIGNATURE_HEADER",
    "WITHHELD",
    "ChannelError",
    "Channels",
    "MailDirSender",
    "Outgoing",
    "Rejected",
    "ShareActivities",
    "SmtpSender",
    "StoreFailures",
    "Unavailable",
    "WebhookSender",
    "beside",
    "bundle_content",
    "idempotency_key",
    "message_id",
]
