"""The actors' side of a share request: their Updates, checked by the rules, and the Queries."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ApplicationError

from . import _rules as rules
from ._options import STEP
from ._steps import StageRecords

with workflow.unsafe.imports_passed_through():
    from activities import DeliveryActivities
    from schemas import (
        AckAction,
        ChallengeAction,
        ConsentAction,
        DecisionAction,
        DecisionEntry,
        HoldAction,
        Notice,
        OverrideAction,
        QueryName,
        RateAction,
        RecallAction,
        RecallEntry,
        RequestAt,
        SearchKey,
        ShareState,
        Signed,
        Status,
        UpdateName,
        WithdrawAction,
        text_sha256,
    )


def _allowed(check: Callable[..., None], *args: Any) -> None:
    """A rule's refusal as the validator's answer: the actor is told at once and nothing enters
    the history. The worker's interceptor records it in the audit log by this type."""
    try:
        check(*args)
    except rules.Refusal as refusal:
        raise ApplicationError(str(refusal), type="Refused", non_retryable=True) from None


class ActorActions:
    """The Updates through which actors act, and the Queries, on the workflow's state.

    Each Update changes the state, adds its audited step, and answers with the status once that
    step is stored (`StageRecords`). The workflow class inherits these handlers.
    """

    _s: ShareState
    _records: StageRecords

    @workflow.query(name=QueryName.REQUEST_SHA256)
    def request_sha256(self) -> str | None:
        """The submitted request's digest, so a re-submission with other content is told apart."""
        return self._s.request_sha256

    @workflow.query(name=QueryName.STATUS)
    def status(self) -> Status:
        s = self._s
        items = s.intake.items if s.intake else []
        return Status(
            request_id=s.request_id, stage=s.stage, outcome=s.outcome, urgency=s.urgency,
            disclosing_agency=s.disclosing_agency, recipient_agency=s.recipient_agency,
            consent=s.consent, override_ground=s.override_ground,
            escalation_tier=s.escalation_tier, overdue=s.overdue, awaiting=s.awaiting,
            approved_items=s.approved_items, acknowledged_at=s.acknowledged_at, held=s.held,
            retention_until=s.intake.retention_until if s.intake else None, deleted_at=s.deleted_at,
            request_sha256=s.request_sha256,
            recalled_at=s.recall.at if s.recall else None, rag=s.rag,
            items_withholding_identity=[i.id for i in items if i.withholds_identity],
            items_needing_manual_redaction=[i.id for i in items if i.needs_manual_redaction],
        )

    @workflow.update(name=UpdateName.CONSENT)
    async def record_consent(self, action: ConsentAction) -> Status:
        s = self._s
        s.consent, s.consent_by, s.consent_signature = action.status, action.by, action.signature
        self._signed(action)
        notices = []
        if action.status == "withdrawn" and s.receipt is not None and s.intake is not None:
            notices.append(Notice(to=s.intake.recipient_contacts, kind="consent_withdrawn",
                                  awaiting="stop further use that relied on consent"))
        self._records.add_step(f"consent_{action.status}", actor=action.by, data=_signature(action),
                               notices=notices)
        return await self._answer_once_stored()

    @record_consent.validator
    def _validate_consent(self, action: ConsentAction) -> None:
        _allowed(rules.check_consent, self._s, action, workflow.now())

    @workflow.update(name=UpdateName.OVERRIDE)
    async def record_override(self, action: OverrideAction) -> Status:
        s = self._s
        s.override_ground, s.override_by, s.override_signature = action.ground, action.by, action.signature
        self._records.add_step("safeguarding_override", actor=action.by, data={"ground": action.ground},
                               note=action.reason)
        return await self._answer_once_stored()

    @record_override.validator
    def _validate_override(self, action: OverrideAction) -> None:
        _allowed(rules.check_override, self._s, action, workflow.now())

    @workflow.update(name=UpdateName.DECIDE)
    async def decide(self, action: DecisionAction) -> Status:
        s = self._s
        assert s.intake is not None  # the rules accept no decision before intake
        kind = rules.decision_kind(s.stage)
        s.decisions.append(DecisionEntry(
            at=workflow.now(), by=action.manager, decision=action.decision, kind=kind,
            items=action.items, reason_sha256=text_sha256(action.reason), signature=action.signature,
            judgement_sha256=text_sha256(action.judgement) if action.judgement else None))
        notices = []
        if action.decision == "approve" and kind == "approval":
            s.approved_items = action.items or [i.id for i in s.intake.items]
        elif action.decision == "decline" and kind == "approval":
            s.declined = True
            s.outcome = "withdrawn" if s.consent == "withdrawn" else "not_shared"
            notices.append(Notice(to=[s.requested_by], kind="request_declined"))
        elif action.decision == "decline":
            notices.append(Notice(to=s.intake.dpo or [m for m, _ in s.intake.managers],
                                  kind="retrospective_review_concerns",
                                  awaiting="follow-up of the concerns raised on an emergency share"))
        self._records.add_step(f"manager_{action.decision}", actor=action.manager,
                               data={"stage": kind, "items": len(action.items or [])},
                               note=action.reason, notices=notices)
        self._add_judgement(action.manager, action.judgement)
        return await self._answer_once_stored()

    @decide.validator
    def _validate_decision(self, action: DecisionAction) -> None:
        _allowed(rules.check_decision, self._s, action, workflow.now())

    @workflow.update(name=UpdateName.WITHDRAW)
    async def withdraw(self, action: WithdrawAction) -> Status:
        """A decision not to share, the practitioner's: the run's wait ends, nothing is sent."""
        s = self._s
        assert s.intake is not None and action.judgement is not None  # the rules refuse otherwise
        s.decisions.append(DecisionEntry(
            at=workflow.now(), by=action.by, decision="withdraw", reason_sha256=text_sha256(action.reason),
            signature=action.signature, judgement_sha256=text_sha256(action.judgement)))
        s.declined, s.outcome = True, "withdrawn"
        # Whoever is awaited (the practitioner for consent, or the managers) is told it is over.
        awaited = [m for m, _ in s.intake.managers] if s.stage == "manager_review" else [s.requested_by]
        self._records.add_step("request_withdrawn", actor=action.by, note=action.reason,
                               notices=[Notice(to=sorted({*awaited, s.requested_by}), kind="request_withdrawn")])
        self._add_judgement(action.by, action.judgement)
        return await self._answer_once_stored()

    @withdraw.validator
    def _validate_withdrawal(self, action: WithdrawAction) -> None:
        _allowed(rules.check_withdrawal, self._s, action, workflow.now())

    def _add_judgement(self, by: str, judgement: str | None) -> None:
        """The s.16LA judgement of a decision not to share: its own step, so its note is its text."""
        if judgement is not None:  # only decisions not to share carry one (the rules see to it)
            self._records.add_step("duty_to_share_judgement", actor=by, note=judgement)

    @workflow.update(name=UpdateName.ACKNOWLEDGE)
    async def acknowledge(self, action: AckAction) -> Status:
        s = self._s
        s.acknowledged_at, s.ack_signature = workflow.now(), action.signature
        if s.stage in ("receipt", "retention"):  # the only overdue these stages have is the receipt's
            s.overdue = False
        self._records.add_acknowledgement(s.acknowledged_at)
        self._records.add_step("bundle_acknowledged", actor=action.agency)
        if s.stage == "retention":  # earlier stages write the record when they end
            self._records.add_decision_record()
        return await self._answer_once_stored()

    @acknowledge.validator
    def _validate_acknowledgement(self, action: AckAction) -> None:
        _allowed(rules.check_acknowledgement, self._s, action, workflow.now())

    @workflow.update(name=UpdateName.LEGAL_HOLD)
    async def legal_hold(self, action: HoldAction) -> Status:
        assert action.by is not None  # the rules refuse a hold that does not say who places it
        self._s.held = action.hold
        self._signed(action)
        self._records.add_step("legal_hold_placed" if action.hold else "legal_hold_released",
                               actor=action.by, data=_signature(action), note=action.reason)
        return await self._answer_once_stored()

    @legal_hold.validator
    def _validate_hold(self, action: HoldAction) -> None:
        _allowed(rules.check_hold, self._s, action, workflow.now())

    @workflow.update(name=UpdateName.RECALL)
    async def recall(self, action: RecallAction) -> Status:
        """The discloser's manager takes a shared bundle back: out of the recipient's inbox, and a
        recipient who had downloaded it is told to destroy every copy. Recorded either way."""
        s = self._s
        assert s.intake is not None
        # Claimed before the activity runs, so a second recall meanwhile is refused by the rules.
        s.recall = RecallEntry(by=action.manager, signature=action.signature, downloaded=False, at=workflow.now())
        recalled = await workflow.execute_activity_method(
            DeliveryActivities.recall_bundle, RequestAt(request_id=s.request_id, at=workflow.now()), **STEP)
        s.recall = s.recall.model_copy(update={"downloaded": recalled.downloaded, "at": recalled.recalled_at})
        asks = ("destroy every copy of the recalled bundle, and tell the discloser you have" if recalled.downloaded
                else "nothing: the bundle was taken out of your inbox before it was downloaded")
        self._records.add_step("bundle_recalled", actor=action.manager, data={"downloaded": recalled.downloaded},
                               note=action.reason, notices=[Notice(
                                   to=s.intake.recipient_contacts, kind="bundle_recalled", awaiting=asks)])
        self._records.add_decision_record()
        return await self._answer_once_stored()

    @recall.validator
    def _validate_recall(self, action: RecallAction) -> None:
        _allowed(rules.check_recall, self._s, action, workflow.now())

    @workflow.update(name=UpdateName.RATE)
    async def rate(self, action: RateAction) -> Status:
        """A change of the front door's RAG rating, with its reason; a manager's wait under way
        is re-timed to the new rating's timescale from when that manager was asked."""
        s = self._s
        self._signed(action)
        self._records.add_step("rating_changed", actor=action.by,
                               data={"from": s.rag, "to": action.rag, **_signature(action)}, note=action.reason)
        s.rag = action.rag
        return await self._answer_once_stored()

    @rate.validator
    def _validate_rating(self, action: RateAction) -> None:
        _allowed(rules.check_rating, self._s, action, workflow.now())

    @workflow.update(name=UpdateName.CHALLENGE)
    async def challenge(self, action: ChallengeAction) -> Status:
        s = self._s
        assert s.intake is not None
        s.challenges += 1
        self._signed(action)
        tier1 = s.intake.managers_at(s.intake.tiers()[0])
        notice = Notice(to=tier1 + s.intake.dpo, kind="challenge_recorded",
                        awaiting="consideration of the subject's challenge")
        self._records.add_step("challenge_recorded", actor=action.by, data=_signature(action), note=action.text,
                               notices=[notice])
        return await self._answer_once_stored()

    @challenge.validator
    def _validate_challenge(self, action: ChallengeAction) -> None:
        _allowed(rules.check_challenge, self._s, action, workflow.now())

    def _signed(self, action: Signed) -> None:
        """A consent, hold, release, rating change or challenge signature is accepted once (the rules check)."""
        if action.signature is not None:
            self._s.action_signatures.append(action.signature)

    async def _answer_once_stored(self) -> Status:
        await self._records.store_before_answer()
        self._publish()  # an update may change what operators filter on (consent basis, overdue)
        return self.status()

    def _publish(self) -> None:
        """Show the state to operators as search attributes: only those that changed, so a step
        that changes none of them adds nothing to the history. Called once the steps are stored."""
        s = self._s
        basis = f"override:{s.override_ground}" if s.override_ground else s.consent
        pairs: list[SearchAttributeUpdate[Any]] = [
            SearchKey.STAGE.value_set(s.stage), SearchKey.OUTCOME.value_set(s.outcome),
            SearchKey.URGENCY.value_set(s.urgency), SearchKey.DISCLOSING.value_set(s.disclosing_agency),
            SearchKey.RECIPIENT.value_set(s.recipient_agency), SearchKey.CONSENT_BASIS.value_set(basis),
            SearchKey.TIER.value_set(s.escalation_tier), SearchKey.OVERDUE.value_set(s.overdue),
        ]
        if s.intake is not None:
            pairs.append(SearchKey.RETENTION_UNTIL.value_set(s.intake.retention_until))
        shown = workflow.info().typed_search_attributes
        changed = [p for p in pairs if shown.get(p.key) != p.value]
        if changed:
            workflow.upsert_search_attributes(changed)


def _signature(action: Signed) -> dict[str, str | None]:
    # In the audit entry, so the hash chain holds who signed what (`safeshare audit verify`).
    return {"signature": action.signature}
