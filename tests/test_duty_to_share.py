"""The law as it stands in 2026, on the time-skipping server: the duty to share's judgement on every
decision not to share, lawful bases as the Data (Use and Access) Act 2025 left them, and the
record an auditor expects (the ICO data sharing code's Annex B).
"""

from __future__ import annotations

import json

import pytest

from clients import ANNEX_B, EXPORT_FIELDS, Refused
from schemas import DecisionAction, IntakeError, WithdrawAction
from workers import CONSENT_GIVEN, in_stage

from .conftest import Stack
from .test_intake import run_cli
from .test_lifecycle import notified
from .test_records_export import cli

JUDGEMENT_NEEDED = ("judgement: a decision not to share records the duty to share's judgement (Children Act 2004 "
                    "s.16LA), why disclosing would be more detrimental to the child than not disclosing "
                    "(--judgement)")
JUDGEMENT = "Telling children's services now would end the only trusted relationship the child has."


async def records(stack: Stack, request_id: str) -> dict:
    code, out, err = await cli(stack, "records", request_id, "--json")
    assert code == 0, err
    return json.loads(out)


async def test_a_decline_without_the_s16la_judgement_is_refused_and_one_with_it_is_recorded(stack: Stack) -> None:
    """Children Act 2004 s.16LA: a decision not to share records that disclosing would be more
    detrimental to the child than not disclosing, with its reasons; without it, it is refused."""
    req = await stack.routine("manager_review")
    rid = req.request_id
    decline = DecisionAction(decision="decline", manager="np-dsl", reason="Not proportionate now.")
    with pytest.raises(Refused) as refused:
        await stack.client.decide(rid, decline)
    assert str(refused.value) == JUDGEMENT_NEEDED
    assert (await stack.client.status(rid)).stage == "manager_review"

    await stack.client.decide(rid, decline.model_copy(update={"judgement": JUDGEMENT}))
    status = await stack.until(rid, in_stage("retention"))
    assert status.outcome == "not_shared" and await stack.store.delivery(rid) is None
    view = await records(stack, rid)
    [decision] = view["decisions"]
    assert decision["decision"] == "decline" and decision["judgement"] == JUDGEMENT
    assert decision["judgement_matches"] is True and len(decision["judgement_sha256"]) == 64
    assert view["ico"]["duty_to_share_judgement"] == [f"np-dsl: {JUDGEMENT}"]
    assert view["ico"]["reasons"] == ["np-dsl (decline): Not proportionate now."]


async def test_a_practitioner_withdraws_while_consent_is_awaited_and_no_manager_is_asked(stack: Stack) -> None:
    """A practitioner's withdrawal is a decision not to share: signed, with the s.16LA judgement,
    ending the wait at once; nothing is sent and no manager is asked."""
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, in_stage("consent"))
    withdraw = WithdrawAction(by="np-teacher", reason="The concern was resolved in school.")
    with pytest.raises(Refused) as refused:
        await stack.client.withdraw(rid, withdraw)
    assert str(refused.value) == JUDGEMENT_NEEDED
    with pytest.raises(Refused, match="withdrawal: unsigned; np-teacher signs it"):
        await stack.client.withdraw(rid, withdraw.model_copy(update={"judgement": JUDGEMENT}), key=None)

    await stack.client.withdraw(rid, withdraw.model_copy(update={"judgement": JUDGEMENT}))
    status = await stack.until(rid, in_stage("retention"))
    assert status.outcome == "withdrawn" and status.consent == "awaited" and await stack.store.delivery(rid) is None
    kinds = await notified(stack, rid)
    assert ("request_withdrawn", "np-teacher") in kinds and not any(k == "manager_asked" for k, _ in kinds)
    view = await records(stack, rid)
    assert view["ico"]["decided_by"] == ["np-teacher (withdraw)"] and view["ico"]["outcome"] == "withdrawn"
    assert view["ico"]["duty_to_share_judgement"] == [f"np-teacher: {JUDGEMENT}"]
    assert "consent_timed_out" not in [e["event"] for e in view["trail"]]


async def test_a_withdrawal_in_manager_review_ends_the_managers_wait_and_tells_them(stack: Stack) -> None:
    """Withdrawn before the decision: the managers awaited are told, and a late decision is refused."""
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.actors.drive(req, [CONSENT_GIVEN], "manager_review")
    await stack.client.withdraw(rid, WithdrawAction(by="np-teacher", reason="Family moved away.", judgement=JUDGEMENT))
    status = await stack.until(rid, in_stage("retention"))
    assert status.outcome == "withdrawn" and status.approved_items is None
    assert ("request_withdrawn", "np-dsl") in await notified(stack, rid)
    with pytest.raises(Refused, match="not awaiting a manager decision"):
        await stack.client.decide(rid, DecisionAction(decision="approve", manager="np-dsl", reason="late"))


async def test_recognised_legitimate_interest_is_refused_for_a_public_authority_not_a_voluntary_sender(
    stack: Stack,
) -> None:
    """UK GDPR Art. 6(1)(ea) (Data (Use and Access) Act 2025): not available to a public authority
    performing its tasks; the directory says which agencies are public authorities."""
    req = await stack.request("routine-consent", lawful_basis="recognised_legitimate_interest")
    with pytest.raises(IntakeError) as refused:
        await stack.client.submit(req)
    assert str(refused.value) == (
        "lawful_basis: a basis other than recognised_legitimate_interest: northfield-primary is a public "
        "authority, which cannot rely on it in performing its public tasks (UK GDPR Art. 6(1)(ea)); "
        "public_task or legal_obligation is expected")
    assert not await stack.store.has_request(req.request_id)

    voluntary = await stack.request("routine-consent", lawful_basis="recognised_legitimate_interest",
                                    disclosing_agency="westside-leisure", requested_by="wl-coach")
    await stack.client.submit(voluntary)
    status = await stack.until(voluntary.request_id, in_stage("consent"))
    assert status.disclosing_agency == "westside-leisure"


async def test_the_export_holds_every_annex_b_field_with_the_agreement_cited(stack: Stack) -> None:
    """ICO data sharing code, Annex B: requester, purpose, lawful basis, why necessary, condition,
    agreement or DPIA, retention, decision, reasons, decision-maker and date, for each request."""
    assert set(ANNEX_B.values()) <= set(EXPORT_FIELDS)
    first = (await stack.env.get_current_time()).date().isoformat()
    req = await stack.routine("retention")
    day = (await stack.env.get_current_time()).date().isoformat()
    code, out, err = await cli(stack, "records", "export", "--from", first, "--to", day, "--json")
    assert code == 0, err
    [row] = [r for r in json.loads(out) if r["request_id"] == req.request_id]
    missing = {item for item, column in ANNEX_B.items() if row[column] in (None, [], "")}
    # A request without special category data needs no condition: the only Annex B field left empty.
    assert missing == {"special category condition"}
    assert row["agreement_ref"] == req.agreement_ref == "ISA-NORTHFIELD-CS-2025"
    assert row["why_necessary"] == req.purpose.statement
    assert row["reasons"] == ["np-dsl (approve): Proportionate."] and row["duty_to_share_judgement"] == []
    assert (await records(stack, req.request_id))["record"]["agreement_ref"] == "ISA-NORTHFIELD-CS-2025"

    await stack.run_to_end(req.request_id)  # deletion shreds the text with the key; the record stays
    code, out, _ = await cli(stack, "records", "export", "--from", first, "--to", day, "--json")
    [row] = [r for r in json.loads(out) if r["request_id"] == req.request_id]
    assert row["why_necessary"] == "(destroyed)" and row["reasons"] == ["(destroyed)"]
    assert row["agreement_ref"] == "ISA-NORTHFIELD-CS-2025" and row["deleted_at"] is not None


async def test_the_cli_withdraws_signed_with_the_practitioners_key_and_names_a_missing_judgement(
    stack: Stack,
) -> None:
    """`safeshare withdraw` as a practitioner types it: refused without --judgement (exit 2, the
    message naming it), recorded with it."""
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, in_stage("consent"))
    key = str(stack.settings.contact_key_file("np-teacher"))
    base = ["withdraw", rid, "--by", "np-teacher", "--reason", "Resolved in school.", "--key", key]
    code, output = await run_cli(stack, *base)
    assert code == 2 and JUDGEMENT_NEEDED in output
    code, output = await run_cli(stack, *base, "--judgement", JUDGEMENT)
    assert code == 0, output
    assert (await stack.until(rid, in_stage("retention"))).outcome == "withdrawn"
