"""What flows through the workflow: actors' actions, activity inputs and outputs, state, record.

Nothing here except `ShareInput.request` carries personal data: the state that the workflow keeps
for years holds ids, categories, hashes and decisions. Free text (reasons, challenges) travels
once, to the store, where it is encrypted under the request's data key; the state keeps its hash.
New fields always get defaults, so that histories recorded by older code still replay.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, BaseModel, Field

from ._calendar import WorkingCalendar
from ._common import (
    AgencyId,
    AgreementRef,
    Category,
    ConsentStatus,
    ContactId,
    DecisionKind,
    Direction,
    ItemId,
    LawfulBasis,
    NonEmptyText,
    Outcome,
    OverrideGround,
    PurposeCategory,
    Rag,
    RecordedDecision,
    RequestId,
    SpecialCondition,
    Stage,
    Urgency,
)
from ._notices import Notice
from ._policy import StagePolicy
from ._request import ShareRequest


def text_sha256(text: str) -> str:
    """How records refer to free text: by hash, so the text itself can be shredded."""
    return hashlib.sha256(text.encode()).hexdigest()


class _Frozen(BaseModel, frozen=True, extra="forbid"):
    pass


# --- actors' actions (Workflow Update arguments) ---------------------------------------------


class Signed(_Frozen):
    """An action its actor signs with their Ed25519 key, so the record proves who acted.

    The signature covers the action's name, the request id, the digest of the request's content
    and every field, so it cannot be replayed on another request, on a run of the same id with
    other content or addressing, or turned into another action. Whether it verifies is for the
    workflow's rules to say (`workflows/_rules.py`), with crypto's one Ed25519 check.
    """

    ACTION: ClassVar[str]
    SIGNER: ClassVar[str]  # the field that names who signs
    signed_at: AwareDatetime | None = Field(default=None, description="When it was signed (signer's clock, with zone)")
    signature: str | None = Field(default=None, description="Base64 Ed25519 signature of signed_message()")

    @property
    def signer(self) -> str | None:
        return getattr(self, self.SIGNER)

    def signed_message(self, request_id: str, request_sha256: str | None) -> bytes:
        """What is signed: `request_sha256` is the digest of the request's content
        (`ShareRequest.digest`, shown in its status), None only for a state kept before it was."""
        body = self.model_dump(mode="json", exclude={"signature"})
        doc = {"v": 2, "action": self.ACTION, "request_id": request_id, "request_sha256": request_sha256, **body}
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


class Submission(Signed):
    """The submitting principal's signature over the request's content: the request is its act.

    For an outbound request the disclosing agency (its system's key) or the practitioner named as
    requester (their own key); for an inbound request the recipient agency that asks, or its
    practitioner named as requester. The worker seals a bundle as the discloser only for a request
    so made (`activities/_intake.py`)."""

    ACTION, SIGNER = "submit", "by"
    # Agency and contact ids are one namespace in the directory (schemas/_directory.py).
    by: AgencyId | ContactId = Field(description="Who signs: the requesting agency's id, or the requester's "
                                     "contact id")


class ConsentAction(Signed):
    ACTION, SIGNER = "consent", "by"
    status: Literal["given", "refused", "withdrawn"] = Field(description="What the family said")
    by: ContactId = Field(description="The practitioner recording it, who signs it")


class OverrideAction(Signed):
    ACTION, SIGNER = "override", "by"
    ground: OverrideGround = Field(description="The guidance's ground for proceeding without consent")
    reason: NonEmptyText = Field(description="The practitioner's reasoning")
    by: ContactId = Field(description="The practitioner recording the override, who signs it")


# Optional in the models so that a decision not to share without it reaches the rules, which
# refuse it naming the law.
Judgement = Annotated[NonEmptyText | None, Field(
    description="A decision not to share: the duty to share's judgement (Children Act 2004 s.16LA), why "
    "disclosing would be more detrimental to the child than not disclosing")]


class DecisionAction(Signed):
    ACTION, SIGNER = "decide", "manager"
    decision: DecisionKind = Field(description="approve, decline or comment")
    manager: ContactId = Field(description="The deciding manager (directory id), who signs it")
    items: list[ItemId] | None = Field(default=None, description="Approve only these items")
    reason: NonEmptyText = Field(description="Reasons, recorded whatever the decision (golden rule 7)")
    judgement: Judgement = None


class WithdrawAction(Signed):
    """The practitioner decides not to share after all: a decision not to share, like a decline."""

    ACTION, SIGNER = "withdraw", "by"
    by: ContactId = Field(description="The practitioner withdrawing the request, who signs it")
    reason: NonEmptyText = Field(description="Why the request is withdrawn (golden rule 7)")
    judgement: Judgement = None


class AckAction(Signed):
    ACTION, SIGNER = "acknowledge", "agency"
    agency: AgencyId = Field(description="The recipient agency acknowledging receipt, which signs it")


class RecallAction(Signed):
    """The discloser's manager takes back a bundle already shared (e.g. sent in error)."""

    ACTION, SIGNER = "recall", "manager"
    manager: ContactId = Field(description="A manager of the disclosing agency, who signs it")
    reason: NonEmptyText = Field(description="Why the bundle is recalled (recorded, shown to the recipient by id only)")


class HoldAction(Signed):
    ACTION, SIGNER = "legal_hold", "by"
    hold: bool = Field(description="True to place a legal hold, False to release it")
    reason: NonEmptyText = Field(description="Why (e.g. litigation, an inquiry)")
    # Optional in the model so that a hold without it reaches the workflow's rules, which refuse
    # it naming the field.
    by: ContactId | None = Field(
        default=None, description="The discloser's DPO or manager placing or releasing the hold, who signs it"
    )


class RateAction(Signed):
    ACTION, SIGNER = "rate", "by"
    by: ContactId = Field(description="The practitioner or manager of the discloser changing the rating, who signs it")
    rag: Rag = Field(description="The new RAG rating")
    # Optional in the model so that a change without it reaches the rules, which refuse it naming the field.
    reason: NonEmptyText | None = Field(default=None, description="Why the rating changes")


class ChallengeAction(Signed):
    ACTION, SIGNER = "challenge", "by"
    by: ContactId = Field(description="The practitioner recording the subject's challenge, who signs it")
    text: NonEmptyText = Field(description="The challenge as the subject made it")


# --- activity inputs and outputs ---------------------------------------------------------------


class ItemSummary(_Frozen):
    id: ItemId
    category: Category
    special_category: bool
    kind: Literal["fact", "opinion"]
    sha256: str = Field(description="Hash of the content, so records can show what was shared")
    # Golden rule 5, found at intake so the manager knows before deciding; counts, never names.
    withholds_identity: bool = Field(
        default=False, description="Mentions a protected third party, whose name the recipient will not see"
    )
    needs_manual_redaction: bool = Field(
        default=False,
        description="Mentions a protected third party in a way that cannot be withheld automatically "
        "(a name part shared with the child or another person, a short or everyday-word part on its "
        "own): it cannot be approved or sent as it stands",
    )


class Intake(_Frozen):
    """What the workflow needs to run the request, snapshotted once at intake."""

    items: list[ItemSummary]
    protected_third_parties: int
    managers: list[tuple[ContactId, int]] = Field(description="Disclosing agency's managers and tiers")
    disclosing_contacts: list[ContactId] = Field(description="Who at the discloser may record actions")
    recipient_contacts: list[ContactId]
    recipient_managers: list[ContactId]
    dpo: list[ContactId]
    stage_policy: StagePolicy
    escalation_tiers: int
    receipt_reminders: int
    retention_until: datetime
    signing_keys: dict[str, str] = Field(
        default_factory=dict,
        description="Public Ed25519 keys of who may sign actions: discloser's managers and "
        "practitioners (by contact id) and the recipient agency (by agency id)",
    )
    recipient_delivery: Literal["inbox", "webhook"] | None = Field(
        default=None, description="How the recipient takes delivery; None in snapshots taken before it was kept"
    )
    rag_timescales: dict[Rag, timedelta] = Field(
        default_factory=dict, description="The manager's timescale per RAG rating, in working hours (policy rag)"
    )
    calendar: WorkingCalendar | None = Field(
        default=None, description="Working time the waits count in, its days off resolved; None: calendar time"
    )

    def tiers(self) -> list[int]:
        """The discloser's escalation tiers, lowest (asked first) first."""
        return sorted({tier for _, tier in self.managers})

    def managers_at(self, tier: int) -> list[ContactId]:
        return [m for m, t in self.managers if t == tier]


class AcceptInput(_Frozen):
    """The request at intake, with its submitter's signature, which intake checks first."""

    request: ShareRequest
    submission: Submission | None = None


class EventInput(_Frozen):
    """One audited step: an audit entry, an optional encrypted note, and its notifications."""

    request_id: RequestId
    step: str = Field(description="Unique per request; makes the activity idempotent under retries")
    event: str
    actor: str = Field(default="system")
    at: datetime
    data: dict[str, str | int | bool | None] = Field(default_factory=dict)
    note: str | None = Field(default=None, description="Free text, stored encrypted, never logged")
    notices: list[Notice] = Field(default_factory=list)


class DeliverInput(_Frozen):
    request_id: RequestId
    item_ids: list[ItemId]
    disclosing_agency: AgencyId
    recipient_agency: AgencyId
    at: datetime


class RequestAt(_Frozen):
    request_id: RequestId
    at: datetime


class Receipt(_Frozen):
    bundle_sha256: str
    delivered_at: datetime
    withheld_identities: int


class Tombstone(_Frozen):
    request_id: RequestId
    destroyed_at: datetime


class NotifyInput(_Frozen):
    """Send one audited step's queued notifications; the outbox rows are keyed on (request, step)."""

    request_id: RequestId
    step: str = Field(description="The audited step whose notifications are sent")


class NotifyResult(_Frozen):
    sent: int = Field(description="Notifications sent by this call (earlier attempts' are not resent)")


class StepsResult(_Frozen):
    unsent: list[str] = Field(
        default_factory=list,
        description="Steps whose notifications could not be sent at once: left to send_notifications",
    )
    refused: list[str] = Field(default_factory=list, description="Steps with a notification the receiver refused")


class PushInput(_Frozen):
    """Push a delivered bundle to the recipient's webhook, if that is its delivery channel."""

    request_id: RequestId
    recipient_agency: AgencyId


class Recalled(_Frozen):
    """What a recall found: the bundle is out of the inbox either way; `downloaded` says whether the
    recipient had taken a copy, which it must now destroy."""

    downloaded: bool
    recalled_at: datetime


class PushResult(_Frozen):
    pushed: bool = Field(description="False when the recipient pulls from the store inbox")
    pushed_at: datetime | None = Field(default=None, description="When the receiver accepted it")


# --- the record --------------------------------------------------------------------------------


class DecisionEntry(_Frozen):
    at: datetime
    by: ContactId
    decision: RecordedDecision
    kind: Literal["approval", "retrospective_review"] = "approval"
    items: list[ItemId] | None = None
    reason_sha256: str
    signature: str | None = Field(default=None, description="The manager's signature of the decision")
    judgement_sha256: str | None = Field(
        default=None, description="A decision not to share: the hash of its s.16LA judgement (kept as a note)"
    )


class _RequestFacts(_Frozen):
    """What a request says of itself that the workflow's state carries and its record repeats."""

    request_id: RequestId
    direction: Direction
    urgency: Urgency
    purpose: PurposeCategory
    disclosing_agency: AgencyId
    recipient_agency: AgencyId
    requested_by: ContactId
    lawful_basis: LawfulBasis
    special_condition: SpecialCondition | None
    agreement_ref: AgreementRef | None = Field(
        default=None, description="The data-sharing agreement or DPIA the request cites"
    )


class DecisionRecord(_RequestFacts):
    """Golden rule 7: what was decided, shared, with whom and why, whatever the outcome."""

    outcome: Outcome
    consent_status: ConsentStatus
    override_ground: OverrideGround | None
    override_by: ContactId | None
    override_signature: str | None = Field(default=None, description="The practitioner's signature")
    decisions: list[DecisionEntry]
    categories_shared: list[Category]
    items_shared: list[ItemSummary]
    withheld_identities: int
    bundle_sha256: str | None
    shared_at: datetime | None
    acknowledged_at: datetime | None
    ack_signature: str | None = Field(default=None, description="The recipient agency's signature of receipt")
    submitted_by: str | None = Field(default=None, description="Who signed the submission: agency or practitioner")
    submission_signature: str | None = Field(default=None, description="Their signature over the request's digest")
    consent_by: ContactId | None = Field(default=None, description="Who recorded the family's latest answer")
    consent_signature: str | None = Field(default=None, description="Their signature of it")
    subject_informed: bool | None
    retention_until: datetime
    deleted_at: datetime | None
    updated_at: datetime
    recalled_at: datetime | None = Field(default=None, description="When the discloser recalled the bundle")
    recalled_by: ContactId | None = None
    recall_signature: str | None = Field(default=None, description="The recalling manager's signature")
    recalled_after_download: bool | None = Field(
        default=None, description="Whether the recipient had downloaded the bundle (and was told to destroy it)")


class StepsInput(_Frozen):
    """What the workflow has to record since it last did, stored in one transaction: audited
    steps, the decision record as it now stands, an acknowledgement (workflows/_steps.py)."""

    request_id: RequestId
    events: list[EventInput] = Field(default_factory=list)
    record: DecisionRecord | None = None
    acknowledged_at: datetime | None = Field(default=None, description="Mark the delivered bundle acknowledged")


# --- the workflow ------------------------------------------------------------------------------


class Awaiting(_Frozen):
    what: str = Field(description="The action awaited, e.g. manager_decision")
    from_whom: list[str] = Field(description="Directory ids of who can act")
    deadline: datetime | None = Field(description="When silence escalates; None: no deadline")


class RecallEntry(_Frozen):
    by: ContactId
    signature: str | None
    downloaded: bool
    at: datetime


class ShareState(_RequestFacts, frozen=False):
    """Everything the workflow knows; carried across continue-as-new, never personal data."""

    inform_subject: bool
    request_sha256: str | None = Field(
        default=None, description="Digest of the submitted request: a re-submission must match it"
    )
    intake: Intake | None = None
    stage: Stage = "intake"
    awaiting: Awaiting | None = None
    consent: ConsentStatus = "not_sought"
    override_ground: OverrideGround | None = None
    override_by: ContactId | None = None
    override_signature: str | None = None
    ack_signature: str | None = None
    submitted_by: str | None = Field(default=None, description="Who signed the submission (agency or contact id)")
    submission_signature: str | None = None
    consent_by: ContactId | None = Field(default=None, description="Who recorded the family's latest answer")
    consent_signature: str | None = None
    action_signatures: list[str] = Field(
        default_factory=list, description="Signatures of consent, hold, release and challenge accepted: each once"
    )
    escalation_tier: int = 0
    overdue: bool = False
    decisions: list[DecisionEntry] = Field(default_factory=list)
    approved_items: list[ItemId] | None = None
    declined: bool = False
    receipt: Receipt | None = None
    acknowledged_at: datetime | None = None
    subject_informed: bool | None = None
    outcome: Outcome = "pending"
    held: bool = False
    challenges: int = 0
    deleted_at: datetime | None = None
    recall: RecallEntry | None = None
    rag: Rag | None = Field(default=None, description="The front door's RAG rating, as last changed")
    steps: int = Field(default=0, description="Counter behind each audited step's idempotency key")


class ShareInput(_Frozen):
    """A new request (first run) or the state carried over by continue-as-new."""

    request: ShareRequest | None = None
    state: ShareState | None = None
    submission: Submission | None = Field(
        default=None, description="The submitting principal's signature over the request (first run only)"
    )


class Status(_Frozen):
    request_id: RequestId
    stage: Stage
    outcome: Outcome
    urgency: Urgency
    disclosing_agency: AgencyId
    recipient_agency: AgencyId
    consent: ConsentStatus
    override_ground: OverrideGround | None
    escalation_tier: int
    overdue: bool
    awaiting: Awaiting | None
    approved_items: list[ItemId] | None
    acknowledged_at: datetime | None
    held: bool
    retention_until: datetime | None
    deleted_at: datetime | None
    request_sha256: str | None = Field(
        default=None, description="Digest of the request's content: every signed action binds it"
    )
    recalled_at: datetime | None = Field(default=None, description="When the discloser recalled the shared bundle")
    rag: Rag | None = Field(default=None, description="The front door's RAG rating, as last changed (with a reason)")
    items_withholding_identity: list[ItemId] = Field(
        default_factory=list, description="Items in which a protected third party's name is withheld"
    )
    items_needing_manual_redaction: list[ItemId] = Field(
        default_factory=list,
        description="Items that mention a protected third party in a way that cannot be withheld "
        "automatically: they cannot be approved; approve the others or decline",
    )
