"""The store's errors: one base, and the cases a caller acts on."""

from __future__ import annotations

from datetime import datetime


class StoreError(Exception):
    """Base of the store's errors."""


class ContentDestroyed(StoreError):
    def __init__(self, request_id: str, destroyed_at: datetime | None = None) -> None:
        super().__init__(f"request {request_id}: content destroyed at retention expiry")
        self.destroyed_at = destroyed_at


class NotFound(StoreError):
    def __init__(self, what: str, request_id: str) -> None:
        super().__init__(f"request {request_id}: no {what}")


class SchemaOutOfDate(StoreError):
    def __init__(self, current: str | None, head: str) -> None:
        super().__init__(
            f"database schema is at revision {current or 'none'}, this code needs {head}: "
            "run `safeshare db upgrade`"
        )
