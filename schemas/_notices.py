"""Notifications: what the workflow asks to be sent, and each message that is sent for it.

A `Notice` is the workflow's: one kind of news for several people, with what is awaited of them and
by when. The step that carries it composes one `Notification` per addressee (activities/_notify.py);
the outbox keeps it (the store's `OutboxEntry` adds only its own bookkeeping) and a channel sends it.
Neither carries personal data: ids, kinds, deadlines and addresses from the directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from ._common import ContactId


class Notice(BaseModel, frozen=True, extra="forbid"):
    to: list[ContactId]
    kind: str = Field(description="snake_case notification kind")
    awaiting: str = Field(default="", description="What is awaited from the addressee, if anything")
    deadline: datetime | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """One message to one contact, as composed when its step is recorded.

    A dataclass rather than a model: it is built by our own code, from the directory or from the
    outbox's rows (the store's row type extends it), and never crosses the Temporal boundary.
    """

    # `request:step:kind:contact`: unique in the outbox, and the Message-ID / Idempotency-Key a
    # receiver drops a resent copy by.
    dedupe_key: str
    request_id: str
    kind: str
    to_contact: str
    channel: Literal["email", "webhook"]
    address: str  # the contact's e-mail address or webhook URL
    subject: str
    body: str
