"""Late, duplicate and wrong actions: each is refused clearly or is a no-op, never a corrupted state."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType

from clients import Refused
from schemas import AckAction, ChallengeAction, ConsentAction, DecisionAction, HoldAction, OverrideAction
from workers import DECLINE, in_stage

from .conftest import Stack


async def history_events(stack: Stack, request_id: str) -> list:
    return list((await stack.client.handle(request_id).fetch_history()).events)


async def test_the_same_request_submitted_concurrently_starts_once(stack: Stack) -> None:
    """Idempotent intake under a race: one submission wins, the others learn it exists."""
    req = await stack.request("routine-consent")
    results = await asyncio.gather(*(stack.client.submit(req) for _ in range(5)))
    assert sorted(r.already_existed for r in results) == [False, True, True, True, True]
    await stack.until(req.request_id, in_stage("consent"))


async def test_consent_after_an_override_and_a_decision_after_a_decline_are_refused(stack: Stack) -> None:
    """Once the practitioner has overridden, consent is no longer awaited; a decline is final."""
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, in_stage("consent"))
    await stack.client.override(rid, OverrideAction(ground="would_increase_risk_to_child", reason="r",
                                                    by="np-teacher"))
    await stack.until(rid, in_stage("manager_review"))
    with pytest.raises(Refused, match="consent is not awaited"):
        await stack.client.consent(rid, ConsentAction(status="given", by="np-teacher"))
    with pytest.raises(Refused, match="override is already recorded"):
        await stack.client.override(rid, OverrideAction(ground="would_increase_risk_to_child", reason="again",
                                                        by="np-teacher"))
    await stack.actors.take(req, DECLINE)
    status = await stack.until(rid, in_stage("retention"))
    with pytest.raises(Refused, match="not awaiting a manager decision"):
        await stack.client.decide(rid, DecisionAction(decision="approve", manager="np-dsl", reason="changed mind"))
    with pytest.raises(Refused, match="no bundle awaits acknowledgement"):
        await stack.client.acknowledge(rid, AckAction(agency="county-childrens-services"))
    assert await stack.client.status(rid) == status  # nothing moved


async def test_a_flood_of_refused_actions_leaves_the_history_and_state_untouched(stack: Stack) -> None:
    """Validators refuse before anything is accepted: no update of the flood enters the history.

    (The time-skipping server keeps the few workflow tasks that carried the rejected updates; the
    real server's speculative workflow tasks leave nothing. Either way the growth is bounded.)"""
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    before = await stack.until(rid, in_stage("consent"))
    length = len(await history_events(stack, rid))
    bad = DecisionAction(decision="approve", manager="np-dsl", reason="unsigned")
    outcomes = await asyncio.gather(*(stack.client.decide(rid, bad, key=None) for _ in range(200)),
                                    return_exceptions=True)
    assert all(isinstance(o, Refused) for o in outcomes)
    after = await history_events(stack, rid)
    assert len(after) - length <= 12, [e.event_type for e in after[length:]]
    accepted = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED
    assert not [e for e in after if e.event_type == accepted]
    assert await stack.client.status(rid) == before


async def test_acknowledging_twice_or_as_another_agency_is_refused(stack: Stack) -> None:
    req = await stack.request("emergency-override")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, in_stage("retrospective_review"))
    with pytest.raises(Refused, match="not the recipient"):
        await stack.client.acknowledge(rid, AckAction(agency="eastgate-surgery"))
    first = await stack.client.acknowledge(rid, AckAction(agency="county-childrens-services"))
    with pytest.raises(Refused, match="already acknowledged"):
        await stack.client.acknowledge(rid, AckAction(agency="county-childrens-services"))
    assert (await stack.client.status(rid)).acknowledged_at == first.acknowledged_at


async def test_every_action_on_a_deleted_request_is_refused(stack: Stack) -> None:
    """After deletion nothing can reopen a request: every actor is told it is closed."""
    rid = await stack.declined()
    assert (await stack.run_to_end(rid)).stage == "deleted"
    actions = [
        stack.client.consent(rid, ConsentAction(status="withdrawn", by="np-dsl")),
        stack.client.decide(rid, DecisionAction(decision="comment", manager="np-head", reason="late")),
        stack.client.acknowledge(rid, AckAction(agency="riverside-police")),
        stack.client.hold(rid, HoldAction(hold=True, reason="too late")),
        stack.client.challenge(rid, ChallengeAction(by="np-dsl", text="too late")),
    ]
    for action in actions:
        with pytest.raises(Refused, match="no open request"):
            await action
    assert (await stack.client.status(rid)).stage == "deleted"
