"""Safeshare's store: encrypted content, inbox, outbox, records and the audit chain."""

from database import make_engine

from ._audit import AuditReport, verify_chain
from ._errors import ContentDestroyed, NotFound, SchemaOutOfDate, StoreError
from ._migrate import head as schema_head
from ._migrate import upgrade_database
from ._pending import PendingSteps
from ._rows import (
    AcceptedRecord,
    AuditEntry,
    AuditStep,
    ChainHead,
    Checkpoint,
    ChildRequest,
    Delivery,
    InboxEntry,
    OutboxEntry,
)
from ._store import Store
from ._tables import metadata

__all__ = [
    "AcceptedRecord",
    "AuditEntry",
    "AuditReport",
    "AuditStep",
    "ChainHead",
    "Checkpoint",
    "ChildRequest",
    "ContentDestroyed",
    "Delivery",
    "InboxEntry",
    "NotFound",
    "OutboxEntry",
    "PendingSteps",
    "SchemaOutOfDate",
    "Store",
    "StoreError",
    "make_engine",
    "metadata",
    "schema_head",
    "upgrade_database",
    "verify_chain",
]
