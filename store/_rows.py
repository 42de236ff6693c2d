"""What the store takes and gives back: typed rows, one model per kind, the columns as attributes.

Frozen dataclasses rather than pydantic models: they are built from rows the store itself wrote
(nothing to validate), thousands at a time when the audit chain is verified.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from schemas import Notification

# --- what the store is given -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditStep:
    """One audited step as the store keeps it: its audit entry, encrypted note and notifications."""

    step: str
    event: str
    actor: str
    at: datetime
    data: dict[str, Any]
    note: str | None
    notices: list[Notification]


# --- what the store gives back ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """A row of the audit chain: one step, linked by prev_hash to the entry before it."""

    seq: int
    request_id: str
    step: str
    event: str
    actor: str
    at: datetime
    data: str  # the step's data as canonical JSON text: what the entry's hash covers
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class ChainHead:
    """The last entry of the chain (seq 0 and the genesis hash while it is empty)."""

    seq: int
    hash: str


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The deployment's Ed25519 signature over the chain head (seq, hash) at a moment."""

    seq: int
    hash: str
    at: datetime
    signature: str


@dataclass(frozen=True, slots=True)
class OutboxEntry(Notification):
    """A notification as the outbox holds it, with the outbox's bookkeeping: queued by an audited
    step, then sent or refused once, never both."""

    id: int
    step: str
    created_at: datetime
    sent_at: datetime | None
    failed_at: datetime | None
    failure: str | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A bundle in the recipient's inbox; bundle is None once destroyed at retention expiry."""

    request_id: str
    sender: str
    recipient: str
    bundle: bytes | None
    bundle_sha256: str
    withheld_identities: int
    delivered_at: datetime
    acknowledged_at: datetime | None = None
    destroyed_at: datetime | None = None
    pushed_at: datetime | None = None
    downloaded_at: datetime | None = None  # the recipient's first download
    recalled_at: datetime | None = None  # recalled by the discloser: the bundle is gone from the inbox


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """An agency's inbox as it is listed: what was delivered, never the bundle itself."""

    request_id: str
    sender: str
    bundle_sha256: str
    delivered_at: datetime
    acknowledged_at: datetime | None
    destroyed_at: datetime | None
    downloaded_at: datetime | None
    recalled_at: datetime | None


@dataclass(frozen=True, slots=True)
class AcceptedRecord:
    """A decision record (its JSON body) with the time its request was accepted."""

    request_id: str
    accepted_at: datetime
    body: str


@dataclass(frozen=True, slots=True)
class ChildRequest:
    """A request about the child sought, as the child index knows it: ids and the day, nothing more."""

    request_id: str
    accepted_at: datetime
    disclosing_agency: str
    recipient_agency: str
