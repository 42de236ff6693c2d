"""The workflow's rules, as pure functions: what each actor may do at each point, and what a refusal says.

No server: the rules take the state, the action and the time, and refuse by raising `Refusal`.
Every refusal's message is checked in full: it is what the actor reads and what the audit log
keeps, so it must name the rule and ids, and never personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import crypto
from clients import sign
from schemas import (
    AckAction,
    ChallengeAction,
    ConsentAction,
    DecisionAction,
    DecisionEntry,
    HoldAction,
    Intake,
    ItemSummary,
    OverrideAction,
    Receipt,
    ShareState,
    StagePolicy,
    WithdrawAction,
)
from workflows._rules import (
    CLOCK_SKEW,
    Refusal,
    check_acknowledgement,
    check_challenge,
    check_consent,
    check_decision,
    check_hold,
    check_override,
    check_withdrawal,
    decision_made,
)

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
RID = "r-rules"
DISCLOSER, RECIPIENT = "northfield-primary", "county-childrens-services"
KEYS = {who: crypto.SigningKey.generate() for who in ("np-teacher", "np-dsl", "np-head", "np-dpo", RECIPIENT)}
DIGEST = "d" * 64  # the request's content digest
DAY = timedelta(days=1)


def item(item_id: str, *, unsafe: bool = False) -> ItemSummary:
    return ItemSummary(id=item_id, category="attendance", special_category=False, kind="fact", sha256="0" * 64,
                       withholds_identity=unsafe, needs_manual_redaction=unsafe)


def intake(*items: ItemSummary) -> Intake:
    return Intake(
        items=list(items) or [item("attendance"), item("behaviour")], protected_third_parties=0,
        managers=[("np-dsl", 1), ("np-head", 2)], disclosing_contacts=["np-teacher", "np-dsl", "np-head", "np-dpo"],
        recipient_contacts=["cs-front-door"], recipient_managers=["cs-team-manager"], dpo=["np-dpo"],
        stage_policy=StagePolicy(consent_wait=DAY, manager_wait=DAY, receipt_wait=DAY), escalation_tiers=2,
        receipt_reminders=1, retention_until=NOW + timedelta(days=3650),
        signing_keys={who: key.public_b64 for who, key in KEYS.items()}, recipient_delivery="inbox",
    )


def state(**changes: Any) -> ShareState:
    """A routine request awaiting the manager's decision, consent given; `changes` move it on."""
    s = ShareState(
        request_id=RID, direction="outbound", urgency="routine", purpose="child_in_need_assessment",
        disclosing_agency=DISCLOSER, recipient_agency=RECIPIENT, requested_by="np-teacher",
        lawful_basis="public_task", special_condition=None, inform_subject=True, intake=intake(),
        stage="manager_review", consent="given", request_sha256=DIGEST,
    )
    return s.model_copy(update=changes)


def signed(action: Any, *, by: str | None = None, request_id: str = RID, at: datetime = NOW) -> Any:
    return sign(action, request_id, DIGEST, KEYS[by or action.signer], at)


def own(action: Any) -> Any:
    """Signed by its actor; by a key of the partnership when the actor has none (refused earlier)."""
    return signed(action, by=action.signer if action.signer in KEYS else "np-teacher")


def refusal(check: Callable[..., None], *args: Any) -> str:
    with pytest.raises(Refusal) as refused:
        check(*args)
    return str(refused.value)


RECEIPT = Receipt(bundle_sha256="0" * 64, delivered_at=NOW - DAY, withheld_identities=0)
APPROVE = DecisionAction(decision="approve", manager="np-dsl", reason="proportionate")
OVERRIDE = OverrideAction(ground="would_increase_risk_to_child", reason="risk", by="np-teacher")
ACK = AckAction(agency=RECIPIENT)
DECLINE = DecisionAction(decision="decline", manager="np-dsl", reason="not proportionate",
                         judgement="more harm in disclosing")
WITHDRAW = WithdrawAction(by="np-teacher", reason="resolved in school", judgement="more harm in disclosing")
JUDGEMENT_NEEDED = ("judgement: a decision not to share records the duty to share's judgement (Children Act 2004 "
                    "s.16LA), why disclosing would be more detrimental to the child than not disclosing "
                    "(--judgement)")


# --- consent ---------------------------------------------------------------------------------


def test_consent_is_recorded_only_while_awaited_and_withdrawn_only_once_given() -> None:
    """Golden rule 3: consent is asked once, by the discloser; only given consent can be withdrawn."""
    awaited = state(stage="consent", consent="awaited")
    check_consent(awaited, own(ConsentAction(status="given", by="np-teacher")), NOW)
    check_consent(state(stage="receipt"), own(ConsentAction(status="withdrawn", by="np-dsl")), NOW)
    assert refusal(check_consent, state(), own(ConsentAction(status="given", by="np-teacher")), NOW) == (
        f"request {RID}: consent is not awaited (stage: manager_review, consent: given)")
    overridden = awaited.model_copy(update={"override_ground": "would_increase_risk_to_child"})
    refused = own(ConsentAction(status="refused", by="np-dsl"))
    assert "consent is not awaited" in refusal(check_consent, overridden, refused, NOW)
    assert refusal(check_consent, awaited, own(ConsentAction(status="withdrawn", by="np-teacher")), NOW) == (
        f"request {RID}: only consent that was given can be withdrawn")


def test_consent_is_recorded_by_the_discloser_and_never_on_a_deleted_request() -> None:
    awaited = state(stage="consent", consent="awaited")
    assert refusal(check_consent, awaited, own(ConsentAction(status="given", by="cs-x")), NOW) == (
        f"by: cs-x is not a contact of {DISCLOSER} or the requester")
    withdrawn = own(ConsentAction(status="withdrawn", by="np-teacher"))
    assert refusal(check_consent, state(stage="deleted"), withdrawn, NOW) == f"request {RID}: content already deleted"
    # Before intake only the requester is known.
    before = state(stage="intake", intake=None, consent="not_sought")
    assert "not a contact" in refusal(check_consent, before, own(ConsentAction(status="given", by="np-dsl")), NOW)
    # and no signing key: nothing can be recorded before intake.
    assert "np-teacher has no signing key" in refusal(check_consent, before,
                                                      own(ConsentAction(status="given", by="np-teacher")), NOW)


# --- signatures (one check, used by override, decision and acknowledgement) -------------------


def test_a_signature_counts_only_from_the_signers_own_key_over_this_request_once_and_not_from_the_future() -> None:
    """Security model: the signer's own key, over this request's action, once; a clock a little fast is forgiven."""
    s = state(stage="consent", consent="awaited")
    check_override(s, signed(OVERRIDE), NOW)
    check_override(s, signed(OVERRIDE, at=NOW + CLOCK_SKEW), NOW)
    assert refusal(check_override, s, OVERRIDE, NOW) == "override: unsigned; np-teacher signs it with their key (--key)"
    wrong = (f"override: signature is not np-teacher's over this override of request {RID} "
             "(altered, another key, or signed for another request or content)")
    assert refusal(check_override, s, signed(OVERRIDE, by="np-dsl"), NOW) == wrong
    assert refusal(check_override, s, signed(OVERRIDE, request_id="r-other"), NOW) == wrong
    altered = signed(OVERRIDE).model_copy(update={"ground": "person_cannot_consent"})
    assert refusal(check_override, s, altered, NOW) == wrong
    assert refusal(check_override, s, signed(OVERRIDE, at=NOW + CLOCK_SKEW + timedelta(seconds=1)), NOW) == (
        "override: signed_at is in the future; check the signer's clock")
    dpo = OverrideAction(ground="would_increase_risk_to_child", reason="risk", by="np-dpo")
    keyless = s.model_copy(update={"intake": intake().model_copy(update={"signing_keys": {
        who: key.public_b64 for who, key in KEYS.items() if who != "np-dpo"}})})
    assert refusal(check_override, keyless, dpo.model_copy(update={"signed_at": NOW, "signature": "AAAA"}), NOW) == (
        "override: np-dpo has no signing key in the directory")
    first = signed(APPROVE.model_copy(update={"decision": "comment"}))
    commented = state(decisions=[DecisionEntry(at=NOW, by="np-dsl", decision="comment", reason_sha256="0" * 64,
                                               signature=first.signature)])
    assert refusal(check_decision, commented, first, NOW) == (
        "decision: this signed decision was already recorded (a replay)")


def test_every_signature_binds_the_requests_content_digest() -> None:
    """A signed action made for one request cannot be replayed onto a run of the same id whose
    content or addressing differs: the signature covers the request's content digest."""
    other_content = state(request_sha256="e" * 64)
    assert "signature is not np-dsl's" in refusal(check_decision, other_content, signed(APPROVE), NOW)
    awaited = other_content.model_copy(update={"stage": "consent", "consent": "awaited"})
    consent = signed(ConsentAction(status="given", by="np-teacher"))
    assert "signature is not np-teacher's" in refusal(check_consent, awaited, consent, NOW)


def test_consent_hold_release_and_challenge_are_refused_unsigned_mis_signed_or_replayed() -> None:
    """Security model: consent, legal holds and challenges are the signed act of the person named, once."""
    awaited = state(stage="consent", consent="awaited")
    assert refusal(check_consent, awaited, ConsentAction(status="given", by="np-teacher"), NOW) == (
        "consent: unsigned; np-teacher signs it with their key (--key)")
    assert "signature is not np-teacher's" in refusal(
        check_consent, awaited, signed(ConsentAction(status="given", by="np-teacher"), by="np-dsl"), NOW)
    retained = state(stage="retention")
    hold = signed(HoldAction(hold=True, reason="inquiry", by="np-dpo"))
    check_hold(retained, hold, NOW)
    assert refusal(check_hold, retained, HoldAction(hold=True, reason="inquiry", by="np-dpo"), NOW) == (
        "legal hold: unsigned; np-dpo signs it with their key (--key)")
    assert "signature is not np-dpo's" in refusal(
        check_hold, retained, hold.model_copy(update={"reason": "something else"}), NOW)
    released = retained.model_copy(update={"action_signatures": [hold.signature]})
    assert refusal(check_hold, released, hold, NOW) == (
        "legal hold: this signed legal hold was already recorded (a replay)")
    release = HoldAction(hold=False, reason="closed", by="np-head")
    assert "release: signature is not np-head's" in refusal(
        check_hold, retained.model_copy(update={"held": True}), signed(release, by="np-dpo"), NOW)
    challenge = signed(ChallengeAction(by="np-teacher", text="that is wrong"))
    check_challenge(retained, challenge, NOW)
    assert refusal(check_challenge, retained, ChallengeAction(by="np-teacher", text="x"), NOW) == (
        "challenge: unsigned; np-teacher signs it with their key (--key)")
    assert "a replay" in refusal(
        check_challenge, retained.model_copy(update={"action_signatures": [challenge.signature]}), challenge, NOW)


# --- override --------------------------------------------------------------------------------


def test_an_override_is_the_disclosers_signed_ground_recorded_once_before_the_decision() -> None:
    """Golden rule 3: without consent, sharing proceeds only on a recorded override ground."""
    check_override(state(stage="manager_review", consent="refused"), signed(OVERRIDE), NOW)
    outsider = OverrideAction(ground="would_increase_risk_to_child", reason="risk", by="cs-x")
    assert refusal(check_override, state(), outsider, NOW) == (
        f"by: cs-x is not a contact of {DISCLOSER} or the requester")
    assert refusal(check_override, state(stage="receipt"), signed(OVERRIDE), NOW) == (
        f"request {RID}: an override is recorded before the decision to share (stage: receipt)")
    earlier = signed(OVERRIDE, at=NOW - DAY)
    done = state(override_ground="person_cannot_consent", override_signature=earlier.signature)
    assert refusal(check_override, done, signed(OVERRIDE), NOW) == f"request {RID}: an override is already recorded"
    assert "a replay" in refusal(check_override, done, earlier, NOW)


# --- decision --------------------------------------------------------------------------------


def test_only_the_disclosers_chain_decides_and_never_the_requester() -> None:
    """Golden rule 4; the requester can never approve their own request."""
    check_decision(state(), signed(APPROVE), NOW)
    outsider = APPROVE.model_copy(update={"manager": "cs-team-manager"})
    assert refusal(check_decision, state(), outsider, NOW) == (
        f"manager cs-team-manager is not in the escalation chain of {DISCLOSER}")
    assert refusal(check_decision, state(requested_by="np-dsl"), signed(APPROVE), NOW) == (
        "the requester cannot decide on their own request")
    assert "not in the escalation chain" in refusal(check_decision, state(intake=None, stage="intake"), APPROVE, NOW)
    assert refusal(check_decision, state(), APPROVE, NOW) == (
        "decision: unsigned; np-dsl signs it with their key (--key)")


def test_a_decision_is_taken_once_in_its_stage_while_a_comment_is_welcome_until_deletion() -> None:
    comment = signed(APPROVE.model_copy(update={"decision": "comment"}))
    for stage in ("consent", "receipt", "retention"):
        check_decision(state(stage=stage), comment, NOW)
    assert refusal(check_decision, state(stage="deleted"), comment, NOW) == f"request {RID}: content already deleted"
    assert refusal(check_decision, state(stage="consent"), signed(APPROVE), NOW) == (
        f"request {RID} is not awaiting a manager decision (stage: consent)")
    decided = state(decisions=[DecisionEntry(at=NOW, by="np-head", decision="decline", reason_sha256="0" * 64)])
    assert decision_made(decided, "manager_review") and not decision_made(decided, "retrospective_review")
    assert refusal(check_decision, decided, signed(APPROVE), NOW) == (
        f"request {RID} is not awaiting a manager decision (stage: manager_review)")
    # An emergency share's retrospective review is a decision of its own kind.
    review = state(stage="retrospective_review", decisions=decided.decisions[:0])
    check_decision(review, signed(APPROVE.model_copy(update={"decision": "decline"})), NOW)
    assert not decision_made(review, "retrospective_review")


def test_only_an_approval_before_sharing_names_items_and_only_this_requests_items() -> None:
    check_decision(state(), signed(APPROVE.model_copy(update={"items": ["attendance"]})), NOW)
    named = "items: only an approval before sharing names items"
    decline = DECLINE.model_copy(update={"items": ["attendance"]})
    assert refusal(check_decision, state(), signed(decline), NOW) == named
    review = state(stage="retrospective_review")
    assert refusal(check_decision, review, signed(APPROVE.model_copy(update={"items": ["attendance"]})), NOW) == named
    unknown = "items: item ids of this request, from ['attendance', 'behaviour']"
    assert refusal(check_decision, state(), signed(APPROVE.model_copy(update={"items": ["other"]})), NOW) == unknown
    assert refusal(check_decision, state(), signed(APPROVE.model_copy(update={"items": []})), NOW) == unknown


@pytest.mark.parametrize("consent", ["refused", "withdrawn", "timed_out"])
def test_without_consent_an_approval_needs_a_recorded_override(consent: str) -> None:
    """Golden rule 3: no consent, no sharing, unless a lawful ground is recorded; declining needs none."""
    assert refusal(check_decision, state(consent=consent), signed(APPROVE), NOW) == (
        f"request {RID}: consent {consent}; approval needs a recorded safeguarding override on a lawful "
        "ground (`safeshare override`)")
    check_decision(state(consent=consent, override_ground="would_cause_harmful_delay"), signed(APPROVE), NOW)
    check_decision(state(consent=consent), signed(DECLINE), NOW)


def test_an_item_that_cannot_be_withheld_is_never_approved_nor_hidden_in_an_approve_all() -> None:
    """Golden rule 5: approving it, by name or as part of "all", is refused, naming it and what to do."""
    mixed = state(intake=intake(item("attendance"), item("address", unsafe=True), item("behaviour")))
    assert refusal(check_decision, mixed, signed(APPROVE), NOW) == (
        "item address: mentions a protected person in a way that cannot be withheld automatically; "
        "approve the other items by name (items: attendance, behaviour) or decline")
    by_name = APPROVE.model_copy(update={"items": ["attendance", "address"]})
    assert refusal(check_decision, mixed, signed(by_name), NOW).startswith("item address: mentions")
    check_decision(mixed, signed(APPROVE.model_copy(update={"items": ["attendance", "behaviour"]})), NOW)
    unsafe = state(intake=intake(item("incident", unsafe=True), item("address", unsafe=True)))
    assert refusal(check_decision, unsafe, signed(APPROVE), NOW) == (
        "items incident, address: mention a protected person in a way that cannot be withheld automatically; "
        "decline")
    check_decision(unsafe, signed(DECLINE), NOW)


# --- the duty to share (Children Act 2004 s.16LA) ----------------------------------------------


def test_a_decline_before_sharing_is_refused_without_the_duty_to_share_judgement() -> None:
    """s.16LA: a decision not to share records that disclosing would be more detrimental to the
    child than not disclosing; only such a decision records one."""
    check_decision(state(), signed(DECLINE), NOW)
    bare = DECLINE.model_copy(update={"judgement": None})
    assert refusal(check_decision, state(), signed(bare), NOW) == JUDGEMENT_NEEDED
    only = "judgement: only a decision not to share (a decline before sharing) records one"
    assert refusal(check_decision, state(), signed(APPROVE.model_copy(update={"judgement": "x"})), NOW) == only
    # A retrospective review's concerns come after sharing: not a decision not to share.
    review = state(stage="retrospective_review")
    check_decision(review, signed(bare), NOW)
    assert refusal(check_decision, review, signed(DECLINE), NOW) == only


def test_a_practitioner_withdraws_before_the_decision_signed_with_the_judgement() -> None:
    """A withdrawal is a decision not to share: the discloser's practitioner's, signed, with the
    s.16LA judgement, and only while nothing is decided or sent."""
    for stage in ("consent", "manager_review"):
        check_withdrawal(state(stage=stage), signed(WITHDRAW), NOW)
    bare = WITHDRAW.model_copy(update={"judgement": None})
    assert refusal(check_withdrawal, state(), signed(bare), NOW) == JUDGEMENT_NEEDED
    assert refusal(check_withdrawal, state(), WITHDRAW, NOW) == (
        "withdrawal: unsigned; np-teacher signs it with their key (--key)")
    assert refusal(check_withdrawal, state(), WithdrawAction(by="cs-front-door", reason="x", judgement="y"), NOW) == (
        f"by: cs-front-door is not a contact of {DISCLOSER} or the requester")
    decided = state(decisions=[DecisionEntry(at=NOW, by="np-dsl", decision="approve", reason_sha256="0" * 64)])
    for late in (decided, state(stage="receipt", receipt=RECEIPT), state(stage="retention")):
        assert refusal(check_withdrawal, late, signed(WITHDRAW), NOW) == (
            f"request {RID}: a request is withdrawn before its decision is made (stage: {late.stage})")
    withdrawn = state(decisions=[DecisionEntry(at=NOW, by="np-teacher", decision="withdraw", reason_sha256="0" * 64)])
    assert decision_made(withdrawn, "manager_review")
    assert refusal(check_decision, withdrawn, signed(DECLINE), NOW) == (
        f"request {RID} is not awaiting a manager decision (stage: manager_review)")


# --- acknowledgement -------------------------------------------------------------------------


def test_only_the_recipient_acknowledges_a_delivered_bundle_once() -> None:
    delivered = state(stage="receipt", receipt=RECEIPT)
    check_acknowledgement(delivered, signed(ACK), NOW)
    assert refusal(check_acknowledgement, delivered, AckAction(agency="riverside-police"), NOW) == (
        f"agency riverside-police is not the recipient of request {RID}")
    assert refusal(check_acknowledgement, delivered, ACK, NOW) == (
        f"acknowledgement: unsigned; {RECIPIENT} signs it with their key (--key)")
    assert refusal(check_acknowledgement, delivered, signed(ACK, by="np-dsl"), NOW).startswith(
        f"acknowledgement: signature is not {RECIPIENT}'s")
    nothing = f"request {RID}: no bundle awaits acknowledgement"
    assert refusal(check_acknowledgement, state(stage="retention"), signed(ACK), NOW) == nothing
    assert refusal(check_acknowledgement, state(stage="deleted", receipt=RECEIPT), signed(ACK), NOW) == nothing
    acked = delivered.model_copy(update={"acknowledged_at": NOW - DAY})
    assert refusal(check_acknowledgement, acked, signed(ACK), NOW) == f"request {RID}: already acknowledged"


# --- legal hold ------------------------------------------------------------------------------


def test_a_legal_hold_is_placed_and_released_by_the_disclosers_dpo_or_managers_only() -> None:
    """Retention is information governance: holds are attributed, and only governors place them."""
    retained = state(stage="retention")
    check_hold(retained, own(HoldAction(hold=True, reason="inquiry", by="np-dpo")), NOW)
    held = retained.model_copy(update={"held": True})
    check_hold(held, own(HoldAction(hold=False, reason="closed", by="np-head")), NOW)
    assert refusal(check_hold, retained, own(HoldAction(hold=True, reason="inquiry")), NOW) == (
        f"by: who places or releases the legal hold (a DPO or manager of {DISCLOSER}) is required")
    assert refusal(check_hold, retained, own(HoldAction(hold=True, reason="inquiry", by="np-teacher")), NOW) == (
        f"by: np-teacher is not a DPO or manager of {DISCLOSER}; only they place or release a legal hold")
    assert "is not a DPO or manager" in refusal(check_hold, state(intake=None, stage="intake"),
                                                own(HoldAction(hold=True, reason="inquiry", by="np-dpo")), NOW)
    assert refusal(check_hold, state(stage="deleted"), own(HoldAction(hold=True, reason="late", by="np-dpo")), NOW) == (
        f"request {RID}: content already deleted")
    again = own(HoldAction(hold=True, reason="again", by="np-dpo"))
    assert refusal(check_hold, held, again, NOW) == f"request {RID}: already on legal hold"
    assert refusal(check_hold, retained, own(HoldAction(hold=False, reason="none", by="np-dpo")), NOW) == (
        f"request {RID}: not on legal hold")


# --- challenge -------------------------------------------------------------------------------


def test_a_challenge_is_recorded_by_the_discloser_until_deletion() -> None:
    check_challenge(state(stage="retention"), own(ChallengeAction(by="np-teacher", text="that is wrong")), NOW)
    assert refusal(check_challenge, state(), own(ChallengeAction(by="cs-front-door", text="x")), NOW) == (
        f"by: cs-front-door is not a contact of {DISCLOSER} or the requester")
    assert refusal(check_challenge, state(stage="deleted"), own(ChallengeAction(by="np-teacher", text="x")), NOW) == (
        f"request {RID}: content already deleted")
