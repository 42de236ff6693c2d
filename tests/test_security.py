"""The security model on the time-skipping server: signed actions, refusals audited, crypto-shredding."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.converter import WorkflowSerializationContext

import crypto
from clients import Refused, sign
from schemas import (
    WORKFLOW_TYPE,
    AckAction,
    DecisionAction,
    IntakeError,
    OverrideAction,
    ShareInput,
    ShareRequest,
    Submission,
    workflow_id,
)
from store import NotFound
from workers import ROUTINE, eventually, in_stage

from .conftest import TESTS, Stack


async def refusals(stack: Stack, request_id: str, count: int) -> list[dict]:
    """The audited refusals, once the worker has appended `count` of them (waited on, not slept)."""
    async def trail() -> list[dict]:
        return [{**dataclasses.asdict(e), "data": json.loads(e.data)}
                for e in await stack.store.audit_trail(request_id) if e.event == "action_refused"]

    return await eventually(f"request {request_id}: {count} refusals audited", trail, lambda t: len(t) >= count,
                            timeout=10, pace=TESTS)


async def at_manager_review(stack: Stack, **changes: object) -> str:
    return (await stack.routine("manager_review", **changes)).request_id


async def test_unsigned_mis_signed_altered_replayed_and_self_approving_decisions_are_refused_and_audited(
    stack: Stack,
) -> None:
    """Security model: only the manager's own signature over this request's decision counts; every
    refused attempt is in the audit log."""
    rid = await at_manager_review(stack)
    other = await at_manager_review(stack)
    digest, other_digest = await stack.client.digest(rid), await stack.client.digest(other)
    dsl, head = stack.client.own_key("np-dsl"), stack.client.own_key("np-head")
    approve = DecisionAction(decision="approve", manager="np-dsl", reason="proportionate")

    with pytest.raises(Refused, match="decision: unsigned"):
        await stack.client.decide(rid, approve, key=None)
    with pytest.raises(Refused, match="signature is not np-dsl's"):
        await stack.client.decide(rid, approve, key=head)  # another manager's key
    altered = sign(approve, rid, digest, dsl).model_copy(update={"reason": "something else"})
    with pytest.raises(Refused, match="signature is not np-dsl's"):
        await stack.client.decide(rid, altered, key=None)
    for_other_request = sign(approve, other, other_digest, dsl)
    with pytest.raises(Refused, match="signature is not np-dsl's"):
        await stack.client.decide(rid, for_other_request, key=None)
    comment = sign(DecisionAction(decision="comment", manager="np-dsl", reason="noted"), rid, digest, dsl)
    await stack.client.decide(rid, comment, key=None)
    with pytest.raises(Refused, match="a replay"):
        await stack.client.decide(rid, comment, key=None)
    future = sign(approve, rid, digest, dsl, now=await stack.env.get_current_time() + timedelta(hours=1))
    with pytest.raises(Refused, match="signed_at is in the future"):
        await stack.client.decide(rid, future, key=None)

    trail = await refusals(stack, rid, 6)
    assert [(e["actor"], e["data"]["action"]) for e in trail] == [("np-dsl", "decide")] * 6
    assert "unsigned" in trail[0]["data"]["reason"] and "replay" in trail[4]["data"]["reason"]
    status = await stack.client.status(rid)
    assert status.stage == "manager_review" and status.approved_items is None

    # The genuine decision still goes through, and the record keeps its signature.
    await stack.client.decide(rid, approve)
    await stack.until(rid, in_stage("receipt"))

    own = await at_manager_review(stack, requested_by="np-dsl")
    with pytest.raises(Refused, match="requester cannot decide"):
        await stack.client.decide(own, approve)  # properly signed, still self-approval
    assert [e["data"]["action"] for e in await refusals(stack, own, 1)] == ["decide"]


async def test_override_and_acknowledgement_must_be_signed_by_their_actor(stack: Stack) -> None:
    """The practitioner signs the override, the recipient agency its receipt; others' keys fail."""
    req = await stack.routine("manager_review")
    rid = req.request_id
    override = OverrideAction(ground="would_increase_risk_to_child", reason="risk", by="np-teacher")
    with pytest.raises(Refused, match="override: unsigned"):
        await stack.client.override(rid, override, key=None)
    with pytest.raises(Refused, match="signature is not np-teacher's"):
        await stack.client.override(rid, override, key=stack.client.own_key("np-dsl"))
    await stack.client.override(rid, override)
    await stack.actors.drive(req, ROUTINE, "receipt")  # the DSL approves

    ack = AckAction(agency="county-childrens-services")
    with pytest.raises(Refused, match="acknowledgement: unsigned"):
        await stack.client.acknowledge(rid, ack, key=None)
    with pytest.raises(Refused, match="signature is not county-childrens-services'"):
        await stack.client.acknowledge(rid, ack, key=stack.client.own_key("riverside-police"))
    await stack.client.acknowledge(rid, ack)
    assert (await stack.until(rid, in_stage("retention"))).acknowledged_at is not None
    assert len(await refusals(stack, rid, 4)) == 4
    # The record keeps each signature, so an auditor can show who decided.
    rec = json.loads(await stack.store.record(rid))
    assert rec["override_signature"] and rec["ack_signature"]
    assert [d["signature"] is not None for d in rec["decisions"]] == [True]


async def test_deletion_makes_the_requests_history_undecryptable_and_leaves_no_ciphertext(stack: Stack) -> None:
    """Security model: destroying the request's keys at retention expiry makes every copy of its
    content unreadable: Temporal's history (wherever it is kept) and the store."""
    req = await stack.routine("consent")
    rid, wf_id = req.request_id, workflow_id(req.request_id)
    first_run = (await stack.client.handle(rid).describe()).run_id

    # Raw history, as the server (or a backup of its database) holds it: ciphertext only.
    raw = Client(stack.env.client.service_client, namespace=stack.env.client.namespace)
    history = await raw.get_workflow_handle(wf_id, run_id=first_run).fetch_history()
    payloads = [p for e in history.events for p in _payloads(e)]
    assert payloads and all(p.metadata["encoding"] == b"binary/encrypted" for p in payloads)
    assert all(req.subject.name.encode() not in e.SerializeToString() for e in history.events)
    decoded = await stack.codec.decode(payloads)  # readable while the request lives
    assert any(req.subject.name.encode() in p.data for p in decoded)

    await stack.actors.drive(req, ROUTINE, "retention")
    final = await stack.run_to_end(rid)
    assert final.stage == "deleted"
    # The tombstone run that records the deletion is sealed under the deployment key only.
    tombstone = await raw.get_workflow_handle(wf_id).fetch_history()
    keys = {p.metadata["safeshare-key"] for e in tombstone.events for p in _payloads(e)}
    assert keys and all(k.startswith(b"ring:") for k in keys)

    for p in payloads:
        with pytest.raises(crypto.CryptoError) as refused:
            await stack.codec.decode([p])
        assert str(refused.value) == crypto.UNREADABLE  # one error, whatever failed
    assert await stack.codec.vault.state(wf_id) == "destroyed"
    assert (await stack.client.status(rid)).stage == "deleted"  # the tombstone run stays readable

    engine = stack.store._engine
    async with engine.connect() as conn:
        for table in ("request_content", "notes"):
            rows = await conn.execute(sa.text(f"SELECT count(*) FROM {table} WHERE request_id = :r"), {"r": rid})  # noqa: S608
            assert rows.scalar() == 0
        key = await conn.execute(sa.text("SELECT wrapped_key FROM request_keys WHERE request_id = :r"), {"r": rid})
        assert key.scalar() is None
        bundle = await conn.execute(sa.text("SELECT bundle FROM inbox WHERE request_id = :r"), {"r": rid})
        assert bundle.scalar() is None


async def test_key_rotation_keeps_old_payloads_readable_and_encrypts_new_ones_under_the_new_key(
    stack: Stack,
) -> None:
    """Key lifecycle: rotation re-wraps the history keys; nothing already written becomes unreadable."""
    codec = stack.codec
    live = codec.with_context(WorkflowSerializationContext(namespace="default", workflow_id="share-rotation-test"))
    plain = [Payload(metadata={"encoding": b"json/plain"}, data=b'"hello"')]
    before_req, before_ring = await live.encode(plain), await codec.encode(plain)
    assert before_ring[0].metadata["safeshare-key"] == b"ring:k1"

    ring = codec.vault.ring
    assert ring.rotate() == "k2"
    assert await codec.vault.rewrap() >= 1
    after_ring = await codec.encode(plain)
    assert after_ring[0].metadata["safeshare-key"] == b"ring:k2"
    for encoded in (before_req, before_ring, after_ring, await live.encode(plain)):
        assert await codec.decode(encoded) == plain
    # Another process that still holds the old ring picks up the new key from the file.
    stale = crypto.KeyRing.load(ring.path)
    stale.current, stale._keys = "k1", {"k1": ring.key("k1")}
    assert stale.key("k2") == ring.key("k2")


def _payloads(event) -> list[Payload]:
    """Every payload in a history event, except search attributes (plaintext, for indexing)."""
    found: list[Payload] = []

    def walk(message) -> None:
        for field, value in message.ListFields():
            if field.message_type is None or field.name == "search_attributes":
                continue
            if field.message_type.GetOptions().map_entry:
                values = list(value.values())
            elif field.is_repeated:
                values = list(value)
            else:
                values = [value]
            for v in values:
                if isinstance(v, Payload):
                    found.append(v)
                elif hasattr(v, "ListFields"):
                    walk(v)

    walk(event)
    return found


def test_signed_message_binds_action_request_and_every_field() -> None:
    """A signature over one action cannot be moved to another request, action or wording."""
    key = crypto.SigningKey.generate()
    now = datetime(2026, 11, 21, tzinfo=UTC)
    digest = "d" * 64
    signed = sign(DecisionAction(decision="approve", manager="m-1", reason="ok"), "r-1", digest, key, now)
    assert crypto.signed_by(signed, "r-1", digest, key.public_b64)
    assert not crypto.signed_by(signed, "r-2", digest, key.public_b64)
    assert not crypto.signed_by(signed, "r-1", "e" * 64, key.public_b64)  # same id, other content
    assert not crypto.signed_by(signed.model_copy(update={"decision": "decline"}), "r-1", digest, key.public_b64)
    assert not crypto.signed_by(signed, "r-1", digest, crypto.SigningKey.generate().public_b64)
    as_ack = AckAction(agency="m-1", signed_at=now, signature=signed.signature)
    assert not crypto.signed_by(as_ack, "r-1", digest, key.public_b64)


async def _started_directly(stack: Stack, req: ShareRequest, submission: Submission | None) -> str:
    """How an insider with Temporal access would start a request: past the client's checks."""
    handle = await stack.client.client.start_workflow(
        WORKFLOW_TYPE, ShareInput(request=req.at_intake((await stack.env.get_current_time()).date()),
                                  submission=submission),
        id=workflow_id(req.request_id), task_queue=stack.client.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)
    stack.client.started.append(handle.id)
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    return str(failed.value.cause.cause)


async def test_a_submission_not_signed_by_the_requesting_agency_or_its_requester_is_refused_at_intake(
    stack: Stack,
) -> None:
    """A request is its submitter's own act: started through Temporal unsigned, or signed by another
    agency or another practitioner, it fails at intake, nothing is stored and the worker never seals
    a bundle in the disclosing agency's name; the attempt is audited."""
    req = await stack.request("routine-consent")
    digest = req.at_intake((await stack.env.get_current_time()).date()).digest()
    police = sign(Submission(by="riverside-police"), req.request_id, digest, stack.client.own_key("riverside-police"))
    colleague = sign(Submission(by="np-teacher"), req.request_id, digest, stack.client.own_key("np-dsl"))
    assert "submission: signed by northfield-primary or the requester np-teacher" in await _started_directly(
        stack, req, None)
    assert "submission.by: northfield-primary itself or the requester np-teacher" in await _started_directly(
        stack, req, police)
    assert "submission: a signature by np-teacher over this request's content" in await _started_directly(
        stack, req, colleague)
    with pytest.raises(NotFound):
        await stack.store.get_request(req.request_id)
    trail = await stack.store.audit_trail(req.request_id)
    assert [e.event for e in trail] == ["submission_refused"] * 3
    # The client refuses the same before anything starts.
    with pytest.raises(IntakeError, match="submission"):
        await stack.client.submit(await stack.request("routine-consent"), stack.client.own_key("np-dsl"))
    # The agency's own system may submit for its practitioner.
    signed_by_agency = await stack.request("routine-consent")
    await stack.client.submit(signed_by_agency, by="northfield-primary")
    await stack.until(signed_by_agency.request_id, in_stage("consent"))


async def test_a_closed_requests_id_never_starts_a_new_run_so_its_signed_approval_cannot_be_replayed(
    stack: Stack,
) -> None:
    """Request ids are never reused: once a request got past intake, a new run under its id (started
    through Temporal, with a valid signature over other content addressed to another agency) is
    refused at intake; and the old run's signed approval would not verify on it anyway."""
    req = await stack.routine("manager_review")
    rid = req.request_id
    approval = sign(DecisionAction(decision="approve", manager="np-dsl", reason="proportionate"), rid,
                    await stack.client.digest(rid), stack.client.own_key("np-dsl"))
    await stack.client.handle(rid).terminate("an insider ends it")
    other = req.model_copy(update={"recipient_agency": "riverside-police"})
    digest = other.at_intake((await stack.env.get_current_time()).date()).digest()
    submission = sign(Submission(by="np-teacher"), rid, digest, stack.client.own_key("np-teacher"))
    assert "request_id: a new id" in await _started_directly(stack, other, submission)
    assert not crypto.signed_by(approval, rid, digest, stack.client.own_key("np-dsl").public_b64)
    assert (await stack.store.audit_trail(rid))[-1].event == "submission_refused"
