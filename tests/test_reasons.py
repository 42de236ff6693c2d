"""Reasons are readable by those entitled to them, and only while the request's content exists.

Rules protected: golden rule 7 (record the decision and its reasons, whether or not you share),
the guidance's "discuss the reasons with the requester" when the decision is not to share, and
retention: the reasons go with the content when the request's data key is shredded.
"""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa

from clients import Refused
from schemas import ChallengeAction, DecisionAction, HoldAction, OverrideAction, text_sha256
from store import make_engine, metadata
from workers import CONSENT_REFUSED

from .conftest import Stack
from .test_records_export import cli


def unique(text: str) -> str:
    """Free text no other test writes, so finding it (or not) means this test's text."""
    return f"{text} {uuid.uuid4().hex[:12]}"


async def records(stack: Stack, request_id: str) -> tuple[dict, str]:
    """`safeshare records ID`, as JSON and as text."""
    code, out, err = await cli(stack, "records", request_id, "--json")
    assert code == 0, err
    code, text, err = await cli(stack, "records", request_id)
    assert code == 0, err
    return json.loads(out), text


async def test_a_decline_shows_its_reason_beside_its_matching_hash(stack: Stack) -> None:
    """Golden rule 7: the reasons for a decision not to share are recorded and can be read, and
    the text read is the text decided on (it matches the record's hash)."""
    reason = unique("Not proportionate to the stated purpose.")
    rid = await stack.declined(reason)
    view, text = await records(stack, rid)
    [decision] = view["decisions"]
    assert decision["by"] == "np-dsl" and decision["decision"] == "decline"
    assert decision["reason"] == reason and decision["reason_sha256"] == text_sha256(reason)
    assert decision["reason_matches"] is True
    assert [e["note"] for e in view["trail"] if e["event"] == "manager_decline"] == [reason]
    assert f"reason_sha256 {text_sha256(reason)}" in text and f"reason: {reason}" in text
    assert "does not match" not in text
    # The text view shows the hashes the README promises: every audit entry's, and the bundle's.
    assert all(f"hash {e['hash']}" in text for e in view["trail"])
    assert "bundle  sha256 (nothing shared)" in text

    # The record's hash altered (or the note): the reader is told the two disagree.
    body = json.loads(await stack.store.record(rid))
    body["decisions"][0]["reason_sha256"] = text_sha256("something else")
    now = await stack.env.get_current_time()
    await stack.store.record_steps(rid, [], record=(json.dumps(body), now), now=now)
    view, text = await records(stack, rid)
    assert view["decisions"][0]["reason_matches"] is False
    assert "reason does not match its recorded hash" in text


async def test_override_reason_challenge_text_and_shared_item_hashes_are_shown(stack: Stack) -> None:
    """Golden rules 3 and 7: an override's reasoning and a subject's challenge are readable in the
    record beside their audit entries, with the hashes of what was shared."""
    req = await stack.request("routine-consent")
    rid = req.request_id
    override, challenge, approval = unique("Asking would alert the carer."), unique("We were not told."), unique("ok")
    await stack.client.submit(req)
    await stack.actors.drive(req, [CONSENT_REFUSED], "manager_review")
    await stack.client.override(rid, OverrideAction(ground="would_increase_risk_to_child", reason=override,
                                                    by="np-teacher"))
    await stack.client.challenge(rid, ChallengeAction(by="np-teacher", text=challenge))
    await stack.client.decide(rid, DecisionAction(decision="approve", manager="np-dsl", items=["attendance"],
                                                  reason=approval))
    await stack.until(rid, lambda s: s.stage == "receipt")
    view, text = await records(stack, rid)
    notes = {e["event"]: (e["actor"], e["note"]) for e in view["trail"]}
    assert notes["safeguarding_override"] == ("np-teacher", override)
    assert notes["challenge_recorded"] == ("np-teacher", challenge)
    assert [(d["reason"], d["reason_matches"]) for d in view["decisions"]] == [(approval, True)]
    for note in (override, challenge, approval):
        assert f"note: {note}" in text
    [item] = view["record"]["items_shared"]
    assert f"sha256 {item['sha256']}" in text and f"bundle  sha256 {view['record']['bundle_sha256']}" in text


async def test_hold_and_release_record_who_and_why_and_refuse_anyone_else(stack: Stack) -> None:
    """Retention: a legal hold is attributed to the discloser's DPO or manager who placed it, with
    their reason; a practitioner, the requester or an unnamed actor is refused."""
    rid = await stack.declined("not proportionate")
    placed, lifted = unique("Litigation"), unique("Litigation settled")
    for by, why in ((None, "is required"), ("np-teacher", "not a DPO or manager"),
                    ("rp-officer", "not a DPO or manager of northfield-primary")):
        with pytest.raises(Refused, match=why):
            await stack.client.hold(rid, HoldAction(hold=True, reason=placed, by=by))
    assert (await stack.client.hold(rid, HoldAction(hold=True, reason=placed, by="np-dpo"))).held
    assert not (await stack.client.hold(rid, HoldAction(hold=False, reason=lifted, by="np-dsl"))).held
    view, text = await records(stack, rid)
    holds = [(e["event"], e["actor"], e["note"]) for e in view["trail"] if e["event"].startswith("legal_hold")]
    assert holds == [("legal_hold_placed", "np-dpo", placed), ("legal_hold_released", "np-dsl", lifted)]
    assert f"note: {placed}" in text and f"note: {lifted}" in text

    # The command line asks who before it asks anything of the workflow.
    for command in ("hold", "release"):
        code, _, err = await cli(stack, command, rid, "--reason", "x")
        assert code == 2 and "--by" in err


async def test_after_deletion_the_reasons_are_gone_from_records_and_the_database(stack: Stack) -> None:
    """Retention: deletion shreds the reasons with the content. `records` still shows the decision
    and its hash, says when the reasons were destroyed, and no database file holds their text."""
    reason = unique("Disproportionate.")
    rid = await stack.declined(reason)
    _, text = await records(stack, rid)
    assert f"reason: {reason}" in text  # positive control: readable before deletion
    final = await stack.run_to_end(rid)
    assert final.stage == "deleted"

    code, out, err = await cli(stack, "records", rid, "--json")
    assert code == 0, err
    view = json.loads(out)
    [decision] = view["decisions"]
    assert decision["reason"] is None and decision["reason_matches"] is None
    assert decision["reason_sha256"] == text_sha256(reason)
    assert view["notes_destroyed_at"] is not None and all(e["note"] is None for e in view["trail"])
    _, text = await records(stack, rid)
    assert f"(destroyed {final.deleted_at:%Y-%m-%d})" in text
    assert reason not in out + text

    engine = make_engine(stack.settings.database_url)
    try:
        async with engine.connect() as conn:
            notes = metadata.tables["notes"]
            assert await conn.scalar(sa.select(sa.func.count()).where(notes.c.request_id == rid)) == 0
    finally:
        await engine.dispose()
    files = list(stack.settings.home.glob("safeshare.db*"))
    assert files and all(reason.encode() not in f.read_bytes() for f in files)
