"""Safeshare's store: encrypted content, inbox, outbox, records and the audit chain."""

from ._audit import AuditReport, verify_chain
from ._migrate import head as schema_head
from ._store import (
    AuditStep,
    ContentDestroyed,
    NotFound,
    OutgoingNotice,
    SchemaOutOfDate,
    Store,
    StoreError,
    make_engine,
    metadata,
    upgrade_database,
)

__all__ = [
    "AuditReport",
    "AuditStep",
    "ContentDestroyed",
    "NotFound",
    "OutgoingNotice",
    "SchemaOutOfDate",
    "Store",
    "StoreError",
    "make_engine",
    "metadata",
    "schema_head",
    "upgrade_database",
    "verify_chain",
]
