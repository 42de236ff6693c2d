"""Safeshare's store: encrypted content, inbox, outbox, records and the audit chain."""

from ._store import (
    ContentDestroyed,
    NotFound,
    OutgoingNotice,
    Store,
    StoreError,
    audit_hash,
    metadata,
)

__all__ = [
    "ContentDestroyed",
    "NotFound",
    "OutgoingNotice",
    "Store",
    "StoreError",
    "audit_hash",
    "metadata",
]
