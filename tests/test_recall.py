"""Recipient access and recall: every download of a bundle is audited, and the discloser's manager
can take a shared bundle back, before or after the recipient downloaded it, recorded either way."""

from __future__ import annotations

import json

import pytest

import crypto
from clients import Refused, read_delivery, sign
from clients._records import export_row
from schemas import DecisionRecord, RecallAction

from .conftest import Stack

REASON = "Sent to the wrong team: recalled"


async def download(stack: Stack, request_id: str, agency: str) -> dict:
    keys = crypto.AgencyKeys.load(stack.settings.agency_key_file(agency))
    _, content = await read_delivery(stack.store, stack.client.directory, request_id, agency, keys)
    return content


async def recall(stack: Stack, request_id: str, manager: str = "np-dsl"):
    action = RecallAction(manager=manager, reason=REASON)
    return await stack.client.recall(request_id, action, stack.client.own_key(manager))


async def trail(stack: Stack, request_id: str, event: str) -> list[tuple[str, dict]]:
    return [(e.actor, json.loads(e.data)) for e in await stack.store.audit_trail(request_id) if e.event == event]


async def notice(stack: Stack, request_id: str) -> str:
    [row] = [r for r in await stack.store.outbox_for(request_id) if r.kind == "bundle_recalled"]
    return row.body


async def test_each_download_of_a_bundle_is_audited_with_who_and_when(stack: Stack) -> None:
    """Recipient access is accountable: the audit log says who downloaded the bundle, and each time."""
    req = await stack.routine("receipt")
    rid, agency = req.request_id, req.recipient_agency
    assert (await download(stack, rid, agency))["items"]
    await download(stack, rid, agency)
    assert await trail(stack, rid, "bundle_downloaded") == [(agency, {"recipient": agency})] * 2
    [entry] = await stack.store.inbox_for(agency)
    assert entry.downloaded_at is not None and entry.recalled_at is None
    with pytest.raises(Refused, match="no bundle for"):
        await download(stack, rid, "riverside-police")  # not the recipient: nothing audited as a download
    assert len(await trail(stack, rid, "bundle_downloaded")) == 2


async def test_a_bundle_recalled_before_download_leaves_the_inbox_and_is_recorded(stack: Stack) -> None:
    """The discloser's manager recalls it, signed: it is gone from the inbox, the recipient is told
    there is nothing to destroy, and the record says it was recalled before any download."""
    req = await stack.routine("receipt")
    rid, agency = req.request_id, req.recipient_agency
    status = await recall(stack, rid)
    assert status.recalled_at is not None

    with pytest.raises(Refused, match="recalled by"):
        await download(stack, rid, agency)
    assert await trail(stack, rid, "bundle_downloaded") == []
    assert await trail(stack, rid, "bundle_recalled") == [("np-dsl", {"downloaded": False})]
    body = await notice(stack, rid)
    assert "before it was downloaded" in body and REASON not in body  # the reason stays in the record
    # Nothing is awaited of the recipient any more: the request moves on to its record and retention.
    await stack.until(rid, lambda s: s.stage == "retention")
    record = json.loads(await stack.store.record(rid))
    assert record["recalled_by"] == "np-dsl" and record["recalled_after_download"] is False
    assert record["recall_signature"] and record["recalled_at"]
    row = export_row(DecisionRecord.model_validate(record), status.recalled_at)
    assert row["recalled_by"] == "np-dsl" and row["recalled_at"] == status.recalled_at.isoformat()


async def test_a_bundle_recalled_after_download_asks_the_recipient_to_destroy_it(stack: Stack) -> None:
    """Downloaded first: the recall still takes it out of the inbox, and the recipient is told to
    destroy every copy; the record says it had been downloaded."""
    req = await stack.routine("receipt")
    rid, agency = req.request_id, req.recipient_agency
    await download(stack, rid, agency)
    await recall(stack, rid)

    assert await trail(stack, rid, "bundle_recalled") == [("np-dsl", {"downloaded": True})]
    assert "destroy every copy" in await notice(stack, rid)
    with pytest.raises(Refused, match="destroy any copy you hold"):
        await download(stack, rid, agency)
    [entry] = await stack.store.inbox_for(agency)
    assert entry.recalled_at is not None and entry.downloaded_at is not None
    await stack.until(rid, lambda s: s.stage == "retention")
    assert json.loads(await stack.store.record(rid))["recalled_after_download"] is True


async def test_only_the_disclosers_chain_recalls_what_was_shared_signed_and_once(stack: Stack) -> None:
    """A recall is the discloser's manager's own signed act, on a request that shared something,
    made once; every other attempt is refused, naming the rule."""
    early = await stack.routine("consent")
    with pytest.raises(Refused, match="nothing has been shared"):
        await recall(stack, early.request_id)

    req = await stack.routine("receipt")
    rid = req.request_id
    with pytest.raises(Refused, match="not in the escalation chain"):
        await recall(stack, rid, manager="cs-team-manager")
    with pytest.raises(Refused, match="recall: unsigned"):
        await stack.client.recall(rid, RecallAction(manager="np-dsl", reason=REASON), None)
    forged = sign(RecallAction(manager="np-dsl", reason=REASON), rid, await stack.client.digest(rid),
                  stack.client.own_key("np-head"))
    with pytest.raises(Refused, match="signature is not np-dsl's"):
        await stack.client.recall(rid, forged, None)
    await recall(stack, rid)
    with pytest.raises(Refused, match="already recalled"):
        await recall(stack, rid, manager="np-head")
