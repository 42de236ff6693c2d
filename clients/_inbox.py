"""Opening a delivered bundle: the recipient's view, shared by the CLI and the demo."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import crypto
from schemas import Directory
from store import Store

from ._client import Refused, open_store, opened
from ._settings import Settings


async def open_delivery(
    settings: Settings, directory: Directory, request_id: str, agency: str, keys: crypto.AgencyKeys
) -> tuple[str, dict[str, Any]]:
    """`read_delivery` from the deployment's store, opened for this one read."""
    async with opened(open_store(settings)) as store:
        return await read_delivery(store, directory, request_id, agency, keys)


async def read_delivery(
    store: Store, directory: Directory, request_id: str, agency: str, keys: crypto.AgencyKeys
) -> tuple[str, dict[str, Any]]:
    """Take the bundle (the download is audited: who, when), verify the sender's signature and
    decrypt; returns the sender and the bundle's content."""
    row = await store.download(request_id, recipient=agency, by=agency, at=datetime.now(UTC))
    if row is None:
        raise Refused(f"request {request_id}: no bundle for {agency}")
    if row.recalled_at is not None:
        raise Refused(f"request {request_id}: the bundle was recalled by {row.sender} on "
                      f"{row.recalled_at:%Y-%m-%d}; destroy any copy you hold")
    if row.bundle is None:
        raise Refused(f"request {request_id}: bundle destroyed at retention expiry")
    sender = directory.agency(row.sender)
    if sender is None:
        raise Refused(f"request {request_id}: sender {row.sender} is not in the directory")
    _, plaintext = crypto.open_bundle(
        row.bundle, recipient=agency, keys=keys, sender_public_b64=sender.signing_public_key
    )
    return row.sender, json.loads(plaintext)
