"""What the guidance allows an actor to do now: pure functions of the state, the action and the time.

The workflow's Update validators call these, so a refused action reaches the actor at once and
never enters the history; tests call them directly. A refusal's message names the rule and ids
only, never personal data: it is shown to the actor and kept in the audit log.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from temporalio import workflow

# The workflow's own copy of the models and of crypto's signature check, not the sandbox's
# re-import (a no-op outside a workflow).
with workflow.unsafe.imports_passed_through():
    import crypto
    from schemas import (
        AckAction,
        ChallengeAction,
        ConsentAction,
        DecisionAction,
        HoldAction,
        OverrideAction,
        RateAction,
        RecallAction,
        ShareState,
        Signed,
        Stage,
        WithdrawAction,
    )

# Signers' clocks may run a little ahead of the server's.
CLOCK_SKEW = timedelta(minutes=5)


# The duty to share (Children Act 2004 s.16LA, inserted by the Children's Wellbeing and Schools Act
# 2026): disclose unless disclosing would be more detrimental to the child than not disclosing.
JUDGEMENT_NEEDED = ("judgement: a decision not to share records the duty to share's judgement (Children Act "
                    "2004 s.16LA), why disclosing would be more detrimental to the child than not disclosing "
                    "(--judgement)")


class Refusal(Exception):
    """An action the rules do not allow now; the message says which rule, for the actor."""


def decision_kind(stage: Stage) -> Literal["approval", "retrospective_review"]:
    """What a manager's decision at this stage is: a retrospective review, or the approval (or not)."""
    return "retrospective_review" if stage == "retrospective_review" else "approval"


def decision_made(s: ShareState, stage: Stage) -> bool:
    """Whether the stage's decision (an approval or decline; a retrospective review) is recorded."""
    kind = decision_kind(stage)
    return any(d.kind == kind and d.decision != "comment" for d in s.decisions)


def signed_by(action: Signed, s: ShareState, public_key: str) -> bool:
    """Whether the action carries the holder of `public_key`'s signature over this action of this
    request, its content as submitted included, made at a stated time."""
    return crypto.signed_by(action, s.request_id, s.request_sha256, public_key)


def check_consent(s: ShareState, action: ConsentAction, now: datetime) -> None:
    """The family's answer, as the practitioner who records it signs it."""
    _check_discloser(s, action.by, "by")
    _check_not_deleted(s)  # before the signature: deletion drops the digest signatures bind
    _check_signature(s, action, "consent", s.action_signatures, now)
    if action.status == "withdrawn":
        if s.consent != "given":
            raise Refusal(f"request {s.request_id}: only consent that was given can be withdrawn")
    elif s.stage != "consent" or s.consent != "awaited" or s.override_ground is not None:
        raise Refusal(f"request {s.request_id}: consent is not awaited (stage: {s.stage}, consent: {s.consent})")


def check_override(s: ShareState, action: OverrideAction, now: datetime) -> None:
    """Golden rule 3: an override is the practitioner's signed, recorded ground, made before the decision."""
    _check_discloser(s, action.by, "by")
    _check_signature(s, action, "override", [s.override_signature], now)
    if s.stage not in ("consent", "manager_review"):
        raise Refusal(f"request {s.request_id}: an override is recorded before the decision to share "
                      f"(stage: {s.stage})")
    if s.override_ground is not None:
        raise Refusal(f"request {s.request_id}: an override is already recorded")


def check_decision(s: ShareState, action: DecisionAction, now: datetime) -> None:
    """Golden rule 4: only the discloser's chain decides, never the requester, each decision signed
    by its manager; an approval needs consent or an override, and never sends what cannot be
    withheld (golden rule 5)."""
    managers = [m for m, _ in s.intake.managers] if s.intake else []
    if action.manager not in managers:
        raise Refusal(f"manager {action.manager} is not in the escalation chain of {s.disclosing_agency}")
    if action.manager == s.requested_by:
        raise Refusal("the requester cannot decide on their own request")
    _check_not_deleted(s)
    _check_signature(s, action, "decision", [d.signature for d in s.decisions], now)
    if action.decision == "comment":
        return
    if s.stage not in ("manager_review", "retrospective_review") or decision_made(s, s.stage):
        raise Refusal(f"request {s.request_id} is not awaiting a manager decision (stage: {s.stage})")
    approval = action.decision == "approve" and s.stage == "manager_review"
    if action.items is not None:
        if not approval:
            raise Refusal("items: only an approval before sharing names items")
        known = {i.id for i in s.intake.items} if s.intake else set()
        if not action.items or not set(action.items) <= known:
            raise Refusal(f"items: item ids of this request, from {sorted(known)}")
    not_sharing = action.decision == "decline" and s.stage == "manager_review"
    if not_sharing and action.judgement is None:
        raise Refusal(JUDGEMENT_NEEDED)
    if action.judgement is not None and not not_sharing:
        raise Refusal("judgement: only a decision not to share (a decline before sharing) records one")
    if approval and s.consent in ("refused", "withdrawn", "timed_out") and s.override_ground is None:
        raise Refusal(f"request {s.request_id}: consent {s.consent}; approval needs a recorded "
                      "safeguarding override on a lawful ground (`safeshare override`)")
    if approval:
        _check_withholding(s, action.items)


def check_withdrawal(s: ShareState, action: WithdrawAction, now: datetime) -> None:
    """A practitioner of the discloser may decide not to share after all, before the decision is
    made: signed, with reasons and the s.16LA judgement, like a decline (golden rule 7)."""
    _check_discloser(s, action.by, "by")
    _check_not_deleted(s)
    _check_signature(s, action, "withdrawal", [d.signature for d in s.decisions], now)
    if s.stage not in ("consent", "manager_review") or decision_made(s, "manager_review"):
        raise Refusal(f"request {s.request_id}: a request is withdrawn before its decision is made "
                      f"(stage: {s.stage})")
    if action.judgement is None:
        raise Refusal(JUDGEMENT_NEEDED)


def check_acknowledgement(s: ShareState, action: AckAction, now: datetime) -> None:
    if action.agency != s.recipient_agency:
        raise Refusal(f"agency {action.agency} is not the recipient of request {s.request_id}")
    _check_signature(s, action, "acknowledgement", [s.ack_signature], now)
    if s.receipt is None or s.stage == "deleted":
        raise Refusal(f"request {s.request_id}: no bundle awaits acknowledgement")
    if s.acknowledged_at is not None:
        raise Refusal(f"request {s.request_id}: already acknowledged")


def check_recall(s: ShareState, action: RecallAction, now: datetime) -> None:
    """Only the discloser's chain takes back what it shared, signed, once."""
    managers = [m for m, _ in s.intake.managers] if s.intake else []
    if action.manager not in managers:
        raise Refusal(f"manager {action.manager} is not in the escalation chain of {s.disclosing_agency}")
    _check_not_deleted(s)
    _check_signature(s, action, "recall", [s.recall.signature if s.recall else None], now)
    if s.receipt is None:
        raise Refusal(f"request {s.request_id}: nothing has been shared, so nothing can be recalled")
    if s.recall is not None:
        raise Refusal(f"request {s.request_id}: the bundle is already recalled")


def check_hold(s: ShareState, action: HoldAction, now: datetime) -> None:
    """Retention is information governance: the discloser's DPO or its managers (DSL, IG lead)."""
    if action.by is None:
        raise Refusal("by: who places or releases the legal hold (a DPO or manager of "
                      f"{s.disclosing_agency}) is required")
    governors = s.intake.dpo + [m for m, _ in s.intake.managers] if s.intake else []
    if action.by not in governors:
        raise Refusal(f"by: {action.by} is not a DPO or manager of {s.disclosing_agency}; "
                      "only they place or release a legal hold")
    _check_not_deleted(s)
    _check_signature(s, action, "legal hold" if action.hold else "release", s.action_signatures, now)
    if action.hold == s.held:
        raise Refusal(f"request {s.request_id}: " + ("already on legal hold" if s.held else "not on legal hold"))


def check_rating(s: ShareState, action: RateAction, now: datetime) -> None:
    """The front door's rating sets the manager's timescale: a change of it must say why."""
    _check_discloser(s, action.by, "by")
    _check_not_deleted(s)
    if action.reason is None:
        raise Refusal("reason: why the RAG rating changes is required; a change of rating is recorded with it")
    if action.rag == s.rag:
        raise Refusal(f"rag: request {s.request_id} is already rated {action.rag}")
    _check_signature(s, action, "rating change", s.action_signatures, now)


def check_challenge(s: ShareState, action: ChallengeAction, now: datetime) -> None:
    _check_discloser(s, action.by, "by")
    _check_not_deleted(s)
    _check_signature(s, action, "challenge", s.action_signatures, now)


def _check_not_deleted(s: ShareState) -> None:
    # "deleted" from the moment disposal begins: nothing can be recorded against destroyed content.
    if s.stage == "deleted":
        raise Refusal(f"request {s.request_id}: content already deleted")


def _check_discloser(s: ShareState, contact: str, field: str) -> None:
    allowed = {*(s.intake.disclosing_contacts if s.intake else ()), s.requested_by}
    if contact not in allowed:
        raise Refusal(f"{field}: {contact} is not a contact of {s.disclosing_agency} or the requester")


def _check_signature(s: ShareState, action: Signed, what: str, used: Sequence[str | None], now: datetime) -> None:
    """Only the signer's own key, over this request's action, once."""
    keys = s.intake.signing_keys if s.intake else {}
    if action.signature is None:
        raise Refusal(f"{what}: unsigned; {action.signer} signs it with their key (--key)")
    signer = action.signer
    if signer is None or signer not in keys:
        raise Refusal(f"{what}: {signer} has no signing key in the directory")
    if not signed_by(action, s, keys[signer]):
        raise Refusal(f"{what}: signature is not {action.signer}'s over this {what} of request "
                      f"{s.request_id} (altered, another key, or signed for another request or content)")
    if action.signature in used:
        raise Refusal(f"{what}: this signed {what} was already recorded (a replay)")
    if action.signed_at is not None and action.signed_at > now + CLOCK_SKEW:
        raise Refusal(f"{what}: signed_at is in the future; check the signer's clock")


def _check_withholding(s: ShareState, approved: list[str] | None) -> None:
    """Golden rule 5: an item that mentions a protected person in a way no program can withhold is
    never approved. Approving every item (no `items`) of a request that has one is refused too,
    naming it, so that the record says exactly what was shared, never an "all but these"."""
    items = s.intake.items if s.intake else []
    unsafe = [i.id for i in items if i.needs_manual_redaction and (approved is None or i.id in approved)]
    if not unsafe:
        return
    others = [i.id for i in items if not i.needs_manual_redaction]
    instead = f"approve the other items by name (items: {', '.join(others)}) or decline" if others else "decline"
    one = len(unsafe) == 1
    raise Refusal(f"{'item' if one else 'items'} {', '.join(unsafe)}: {'mentions' if one else 'mention'} a "
                  f"protected person in a way that cannot be withheld automatically; {instead}")
