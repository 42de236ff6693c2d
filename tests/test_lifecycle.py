"""Every path of the lifecycle on the time-skipping server: days and years pass in milliseconds."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

import crypto
from clients import Refused
from schemas import AckAction, DecisionAction, HoldAction, SearchKey
from store import ContentDestroyed
from workers import ACKNOWLEDGE, CONSENT_REFUSED, DECLINE, ROUTINE, SCRIPTS, in_stage

from .conftest import Stack

TWO_DAYS = timedelta(days=2, minutes=1)


async def open_bundle(stack: Stack, request_id: str, agency: str) -> dict:
    row = await stack.store.delivery(request_id)
    assert row is not None and row.recipient == agency
    directory = stack.client.directory
    keys = crypto.AgencyKeys.load(stack.settings.agency_key_file(agency))
    _, plaintext = crypto.open_bundle(
        row.bundle, recipient=agency, keys=keys,
        sender_public_b64=directory.agency(row.sender).signing_public_key,
    )
    return json.loads(plaintext)


async def record(stack: Stack, request_id: str) -> dict:
    body = await stack.store.record(request_id)
    assert body is not None
    return json.loads(body)


async def notified(stack: Stack, request_id: str) -> list[tuple[str, str]]:
    return [(r.kind, r.to_contact) for r in await stack.store.outbox_for(request_id)]


async def test_consent_given_request_is_shared_acknowledged_retained_and_deleted(stack: Stack) -> None:
    """The whole lifecycle; deletion on the policy's date makes the content unreadable (retention)."""
    req = await stack.routine("consent")
    rid = req.request_id
    assert ("consent_requested", "np-teacher") in await notified(stack, rid)
    status = await stack.actors.drive(req, ROUTINE, "manager_review")  # consent given
    assert status.awaiting.from_whom == ["np-dsl"] and status.escalation_tier == 1
    await stack.actors.drive(req, ROUTINE, "receipt")  # the DSL approves
    # The recipient takes delivery from its inbox: sealed, nothing pushed.
    history = await stack.client.handle(rid).fetch_history()
    scheduled = {e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events if e.HasField("activity_task_scheduled_event_attributes")}
    assert "seal_and_deliver" in scheduled and "push_bundle" not in scheduled

    bundle = await open_bundle(stack, rid, "county-childrens-services")
    assert {i["id"] for i in bundle["items"]} == {"attendance", "behaviour"}
    assert bundle["subject"]["name"] == req.subject.name

    status = await stack.actors.drive(req, ROUTINE, "retention")  # the recipient acknowledges
    # 25th birthday, disposed of at the close of that year.
    disposal = datetime(req.subject.date_of_birth.year + 26, 1, 1, tzinfo=UTC)
    assert status.retention_until == disposal
    rec = await record(stack, rid)
    assert rec["outcome"] == "shared" and rec["consent_status"] == "given"
    assert rec["categories_shared"] == ["attendance", "behaviour"]
    assert rec["acknowledged_at"] is not None and rec["deleted_at"] is None
    assert "Monday" not in json.dumps(rec)  # hashes, never content
    # Each stage's audit entries, record and acknowledgement are stored by one activity, which
    # sent the notifications too; every step is in the audit trail once.
    history = await stack.client.handle(rid).fetch_history()
    scheduled = [e.activity_task_scheduled_event_attributes.activity_type.name
                 for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    assert set(scheduled) == {"accept_request", "record_steps", "seal_and_deliver"}, scheduled
    assert len(scheduled) == 7 and len(history.events) < 100, (len(scheduled), len(history.events))
    steps = [int(e.step.split("-")[0]) for e in await stack.store.audit_trail(rid)]
    assert sorted(steps) == list(range(1, len(steps) + 1)) and len(steps) >= 9
    assert all(r.sent_at is not None for r in await stack.store.outbox_for(rid))
    [row] = [r for r in await stack.store.inbox_for("county-childrens-services") if r.request_id == rid]
    assert row.acknowledged_at is not None

    final = await stack.run_to_end(rid)  # years pass here
    assert final.stage == "deleted"
    assert timedelta(0) <= final.deleted_at - disposal < timedelta(days=2)
    with pytest.raises(ContentDestroyed):
        await stack.store.get_request(rid)
    assert (await stack.store.delivery(rid)).bundle is None
    tomb = await record(stack, rid)
    assert datetime.fromisoformat(tomb["deleted_at"]) == final.deleted_at and tomb["outcome"] == "shared"


async def test_consent_refused_then_override_lets_the_manager_share(stack: Stack) -> None:
    """Golden rule 3: without consent, sharing proceeds only on a recorded override ground."""
    req = await stack.request("health-special-category")
    rid = req.request_id
    script = SCRIPTS["health-special-category"]  # consent refused; an override; two items approved
    await stack.client.submit(req)
    await stack.actors.drive(req, script, "manager_review")
    with pytest.raises(Refused, match="override"):
        await stack.client.decide(rid, DecisionAction(decision="approve", manager="eg-safeguarding-lead",
                                                      reason="needed"))
    await stack.actors.drive(req, script, "receipt")
    bundle = await open_bundle(stack, rid, "county-childrens-services")
    assert [i["id"] for i in bundle["items"]] == ["camhs-referral", "gp-view"]
    rec = await record(stack, rid)
    assert rec["outcome"] == "partly_shared"
    assert rec["override_ground"] == "would_increase_risk_to_child" and rec["consent_status"] == "refused"
    assert rec["special_condition"] == "dpa2018_sch1_para18_safeguarding_children"


async def test_consent_refused_and_manager_declines_records_not_shared(stack: Stack) -> None:
    """Golden rule 7: a decision not to share is recorded, and the requester is told."""
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    refused_then_declined = [CONSENT_REFUSED, replace(DECLINE, reason="not necessary without consent")]
    status = await stack.actors.drive(req, refused_then_declined, "retention")
    assert status.outcome == "not_shared"
    assert await stack.store.delivery(rid) is None
    rec = await record(stack, rid)
    assert rec["outcome"] == "not_shared" and rec["items_shared"] == []
    assert rec["decisions"][0]["decision"] == "decline" and rec["decisions"][0]["by"] == "np-dsl"
    assert ("request_declined", "np-teacher") in await notified(stack, rid)
    notes = await stack.store.notes_for(rid)
    assert "not necessary without consent" in notes.values()


async def test_emergency_is_shared_at_once_and_awaits_retrospective_review(stack: Stack) -> None:
    """ICO emergency step: share now, review afterwards; the review is still required."""
    req = await stack.request("emergency-override")
    rid = req.request_id
    started = await stack.env.get_current_time()
    await stack.client.submit(req)
    status = await stack.until(rid, in_stage("retrospective_review"))
    assert status.awaiting.what == "manager_decision" and status.awaiting.from_whom == ["rp-sergeant"]
    delivery = await stack.store.delivery(rid)
    assert delivery is not None
    assert delivery.delivered_at - started < timedelta(hours=1)  # the emergency manager_wait
    bundle = await open_bundle(stack, rid, "county-childrens-services")
    # Golden rule 5: the protected caller's identity is withheld, everywhere in the content.
    assert "Jordan" not in json.dumps(bundle) and bundle["withheld_identities"] == 1
    status = await stack.actors.drive(req, SCRIPTS["emergency-override"], "retention")  # acknowledged, reviewed
    rec = await record(stack, rid)
    assert rec["decisions"][0]["kind"] == "retrospective_review"
    assert rec["subject_informed"] is False  # the override ground makes telling unsafe
    # A looked-after child: 75th birthday, disposed of at the close of that year.
    assert status.retention_until == datetime(req.subject.date_of_birth.year + 76, 1, 1, tzinfo=UTC)


async def test_manager_silence_escalates_tier_by_tier_then_overdue_never_approved(stack: Stack) -> None:
    """Golden rule 4 and the design: silence escalates and flags, it never approves."""
    req = await stack.request("routine-consent", consent={"action": "seek"})
    rid = req.request_id
    await stack.client.submit(req)
    status = await stack.actors.drive(req, ROUTINE, "manager_review")
    assert status.escalation_tier == 1
    await stack.env.sleep(TWO_DAYS)
    status = await stack.until(rid, lambda s: s.awaiting.from_whom == ["np-head"])
    assert status.escalation_tier == 2 and not status.overdue
    await stack.env.sleep(TWO_DAYS)
    status = await stack.until(rid, lambda s: s.awaiting.from_whom == ["np-trust-safeguarding"])
    assert status.escalation_tier == 3
    await stack.env.sleep(TWO_DAYS)
    status = await stack.until(rid, lambda s: s.overdue)
    await stack.env.sleep(timedelta(days=30))
    status = await stack.client.status(rid)
    assert status.stage == "manager_review" and status.overdue and status.approved_items is None
    assert await stack.store.delivery(rid) is None
    kinds = await notified(stack, rid)
    assert ("manager_escalated", "np-head") in kinds and ("manager_escalated", "np-trust-safeguarding") in kinds
    assert ("decision_overdue", "np-dpo") in kinds
    # A decision still ends the wait and clears the flag.
    await stack.client.decide(rid, DecisionAction(decision="decline", manager="np-head", reason="late",
                                                      judgement="Disclosing now would do more harm than good."))
    status = await stack.until(rid, in_stage("retention"))
    assert not status.overdue and status.outcome == "not_shared"


async def test_refused_decisions_self_approval_outsider_and_wrong_stage(stack: Stack) -> None:
    """The requester can never approve their own request; only the discloser's chain decides."""
    req = await stack.request("routine-consent", requested_by="np-dsl")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, in_stage("consent"))
    with pytest.raises(Refused, match="not awaiting a manager decision"):
        await stack.client.decide(rid, DecisionAction(decision="approve", manager="np-head", reason="x"))
    await stack.actors.drive(req, ROUTINE, "manager_review")  # the requester records consent given
    with pytest.raises(Refused, match="requester cannot decide"):
        await stack.client.decide(rid, DecisionAction(decision="approve", manager="np-dsl", reason="x"))
    with pytest.raises(Refused, match="not in the escalation chain"):
        await stack.client.decide(rid, DecisionAction(decision="approve", manager="cs-team-manager", reason="x"))
    with pytest.raises(Refused, match="items"):
        await stack.client.decide(rid, DecisionAction(decision="approve", manager="np-head",
                                                      items=["no-such-item"], reason="x"))
    assert (await stack.client.status(rid)).approved_items is None
    await stack.client.decide(rid, DecisionAction(decision="approve", manager="np-head", reason="ok"))
    with pytest.raises(Refused, match="not awaiting a manager decision"):
        await stack.client.decide(rid, DecisionAction(decision="decline", manager="np-head", reason="x"))
    await stack.until(rid, in_stage("receipt"))


async def test_legal_hold_defers_deletion_until_released(stack: Stack) -> None:
    """Retention: a legal hold stops deletion; release lets it happen."""
    rid = await stack.declined()
    status = await stack.client.status(rid)
    first_run = (await stack.client.handle(rid).describe()).run_id
    await stack.client.hold(rid, HoldAction(hold=True, reason="inquiry", by="np-dpo"))
    with pytest.raises(Refused, match="already on legal hold"):
        await stack.client.hold(rid, HoldAction(hold=True, reason="again", by="np-dpo"))
    # Past the retention date: still held, still readable.
    now = await stack.env.get_current_time()
    await stack.env.sleep(status.retention_until - now + timedelta(days=400))
    status = await stack.client.status(rid)
    assert status.stage == "retention" and status.held
    assert await stack.store.get_request(rid)
    # Yearly runs since: the stage stays visible to operators, and the audit trail says once that
    # retention began.
    described = await stack.client.handle(rid).describe()
    assert described.run_id != first_run and described.typed_search_attributes.get(SearchKey.STAGE) == "retention"
    events = [e.event for e in await stack.store.audit_trail(rid)]
    assert events.count("retention_started") == 1
    await stack.client.hold(rid, HoldAction(hold=False, reason="inquiry closed", by="np-dpo"))
    final = await stack.client.wait(rid)  # already past the date: deletion follows the release
    assert final.stage == "deleted" and final.deleted_at > status.retention_until
    with pytest.raises(ContentDestroyed):
        await stack.store.get_request(rid)


async def test_no_acknowledgement_sends_a_reminder_then_escalates(stack: Stack) -> None:
    """Secure and timely: an unopened bundle is chased, then escalated to managers."""
    req = await stack.request("routine-consent", consent={"action": "do_not_seek", "ground": "person_cannot_consent",
                                              "reason": "no one with parental responsibility"},
                  lawful_basis="public_task")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.actors.drive(req, ROUTINE, "receipt")  # consent not sought; the DSL approves
    await stack.env.sleep(timedelta(days=3, minutes=1))
    await stack.until(rid, lambda s: s.stage == "receipt" and s.awaiting.deadline is not None)
    assert ("receipt_reminder", "cs-front-door") in await notified(stack, rid)
    await stack.env.sleep(timedelta(days=3, minutes=1))
    status = await stack.until(rid, lambda s: s.overdue)
    kinds = await notified(stack, rid)
    assert ("receipt_overdue", "cs-team-manager") in kinds and ("receipt_overdue", "np-dsl") in kinds
    # A late acknowledgement is still accepted and clears the flag.
    status = await stack.actors.take(req, ACKNOWLEDGE)
    assert not status.overdue and status.acknowledged_at is not None
    with pytest.raises(Refused, match="not the recipient"):
        await stack.client.acknowledge(rid, AckAction(agency="riverside-police"))


async def test_resubmitting_a_request_id_returns_the_existing_request(stack: Stack) -> None:
    """Idempotent intake: the request id is the key; a second submit starts nothing."""
    req = await stack.request("routine-consent")
    first = await stack.client.submit(req)
    second = await stack.client.submit(req)
    assert not first.already_existed and second.already_existed
    assert first.workflow_id == second.workflow_id == f"share-{req.request_id}"
    # Settled before teardown ends it: a workflow terminated mid-activity stalls time skipping.
    await stack.until(req.request_id, in_stage("consent"))


def test_retention_is_keyed_to_date_of_birth_and_looked_after_status() -> None:
    """Retention: 25th birthday by default, 75th for looked-after children (policy)."""
    from schemas import Policy, RetentionRule, StagePolicy

    stage = StagePolicy(consent_wait=timedelta(1), manager_wait=timedelta(1), receipt_wait=timedelta(1))
    exact = Policy(stages=dict.fromkeys(("emergency", "urgent", "routine"), stage),
                   retention={"child_safeguarding": RetentionRule(disposal="on_date")})
    accepted = date(2026, 12, 2)
    assert exact.retention_until(date(2010, 6, 2), False, accepted) == datetime(2035, 6, 2, tzinfo=UTC)
    assert exact.retention_until(date(2010, 6, 2), True, accepted) == datetime(2085, 6, 2, tzinfo=UTC)
    assert exact.retention_until(date(2012, 2, 29), False, accepted) == datetime(2037, 3, 1, tzinfo=UTC)
    yearly = exact.model_copy(update={"retention": {"child_safeguarding": RetentionRule()}})
    assert yearly.retention_until(date(2010, 6, 2), False, accepted) == datetime(2036, 1, 1, tzinfo=UTC)


def test_no_request_is_deleted_before_the_policy_minimum_whatever_its_dates() -> None:
    """Records are kept at least the policy's minimum after intake: a subject whose birthday rule
    has long passed (an adult, or a date of birth entered wrongly) is not deleted at once."""
    from schemas import Policy, RetentionRule, StagePolicy

    stage = StagePolicy(consent_wait=timedelta(1), manager_wait=timedelta(1), receipt_wait=timedelta(1))
    policy = Policy(stages=dict.fromkeys(("emergency", "urgent", "routine"), stage),
                    retention={"child_safeguarding": RetentionRule(disposal="on_date", minimum_years=6)})
    accepted = date(2026, 12, 2)
    for born in (date(1986, 12, 2), date(1900, 1, 1), date(2026, 1, 1) - timedelta(days=9000)):
        assert policy.retention_until(born, False, accepted) == datetime(2032, 12, 2, tzinfo=UTC)
        assert policy.retention_until(born, True, accepted) >= datetime(2032, 12, 2, tzinfo=UTC)
