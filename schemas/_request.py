"""The share request as a practitioner submits it."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, ValidationInfo, model_validator
from pydantic_core import PydanticCustomError

from ._common import (
    SPECIAL_CATEGORIES,
    AgencyId,
    AgreementRef,
    Category,
    ContactId,
    Direction,
    ItemId,
    LawfulBasis,
    NhsNumber,
    NonEmptyText,
    OverrideGround,
    PurposeCategory,
    RequestId,
    SpecialCondition,
    Text,
    Urgency,
    holds_a_date,
)

MAX_CONTENT_CHARS = 20_000
MAX_ITEMS = 50
ADULT_AGE = 18
MAX_AGE = 120
# The longest pregnancy, so an unborn child's expected date and records made before a birth
# (a pre-birth assessment) are plausible, and nothing earlier is.
PREGNANCY = timedelta(weeks=42)
# A date entered in a zone ahead of UTC may be tomorrow's there.
_TODAY_SLACK = timedelta(days=1)


def _fail(field: str, expected: str) -> PydanticCustomError:
    # The message names the field and what is expected; pydantic's own errors carry the input
    # value, which is why the CLI renders errors itself and these never include it.
    return PydanticCustomError("safeshare", "{field}: {expected}", {"field": field, "expected": expected})


class Purpose(BaseModel, frozen=True, extra="forbid"):
    category: PurposeCategory = Field(description="Why the information is needed, from the guidance's list")
    statement: NonEmptyText = Field(
        description="Why sharing is necessary and proportionate for that purpose (golden rule 7)"
    )


def years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


class Subject(BaseModel, frozen=True, extra="forbid"):
    name: NonEmptyText = Field(description="The subject's full name")
    date_of_birth: date = Field(
        description="Date of birth (for an unborn child, the expected date of delivery); retention is keyed to it"
    )
    age_group: Literal["child", "unborn", "adult"] = Field(
        default="child",
        description="child: under 18 at intake; unborn: an unborn child (e.g. on a pre-birth protection plan), "
        "date_of_birth the expected date within 42 weeks; adult: 18 or over, an adult whose circumstances bear "
        "on a child's safety (e.g. a parent)",
    )
    looked_after: bool = Field(default=False, description="A looked-after child: longer retention")
    nhs_number: NhsNumber | None = Field(
        default=None,
        description="The child's NHS number, the consistent child identifier (Children Act 2004 s.16LC): "
        "10 digits with a modulus 11 check digit; the recipient sees it, and the agency's requests about the "
        "same child are found by it (`safeshare find-child`)",
    )

    def check_date_of_birth(self, today: date) -> None:
        """The date of birth must fit the age group on the day of intake (never echoed in the error)."""
        dob, child_from = self.date_of_birth, years_before(today, ADULT_AGE)
        if self.age_group == "unborn":
            if not today < dob <= today + PREGNANCY:
                raise _fail("subject.date_of_birth", "for an unborn child, the expected date of delivery: after "
                            "today and within 42 weeks")
        elif dob > today + _TODAY_SLACK:
            raise _fail("subject.date_of_birth", "a date not in the future (for an unborn child set "
                        "subject.age_group: unborn)")
        elif self.age_group == "child" and dob <= child_from:
            raise _fail("subject.date_of_birth", f"a child's date of birth, under {ADULT_AGE} today (for an "
                        "adult subject set subject.age_group: adult)")
        elif self.age_group == "adult" and dob > child_from:
            raise _fail("subject.date_of_birth", f"an adult's date of birth, {ADULT_AGE} or over today "
                        "(or subject.age_group: child)")
        elif dob < years_before(today, MAX_AGE):
            raise _fail("subject.date_of_birth", f"a date of birth within the last {MAX_AGE} years")


class ThirdParty(BaseModel, frozen=True, extra="forbid"):
    ref: ItemId = Field(description="Short reference for this person within the request")
    name: NonEmptyText = Field(description="Name as it appears in the items' content")
    relationship: NonEmptyText = Field(description="Relationship to the child")
    protected: bool = Field(
        default=False,
        description="Identity withheld from the recipient: knowing it could put them at risk (golden rule 5)",
    )


class InformationItem(BaseModel, frozen=True, extra="forbid"):
    id: ItemId = Field(description="Item reference, unique within the request")
    category: Category = Field(
        description="What kind of information this is; health, ethnicity, religion and sexual health "
        "are special category"
    )
    kind: Literal["fact", "opinion"] = Field(description="Fact, or professional opinion (accuracy principle)")
    recorded_on: date = Field(description="When the information was recorded")
    historical: bool = Field(default=False, description="Historical information, flagged as such")
    content: Annotated[str, Text] = Field(
        min_length=1, max_length=MAX_CONTENT_CHARS, description="The information itself"
    )

    @property
    def special_category(self) -> bool:
        """Special category data under UK GDPR Art. 9: derived from the category, never stated."""
        return self.category in SPECIAL_CATEGORIES


class ConsentPlan(BaseModel, frozen=True, extra="forbid"):
    action: Literal["seek", "do_not_seek"] = Field(description="Seek consent, or record why not")
    ground: OverrideGround | None = Field(default=None, description="Why consent is not sought")
    reason: NonEmptyText | None = Field(default=None, description="The practitioner's reasoning for the ground")

    @model_validator(mode="after")
    def _ground_matches_action(self) -> Self:
        if self.action == "do_not_seek" and self.ground is None:
            raise _fail("consent.ground", "a ground is required when consent is not sought")
        if self.action == "do_not_seek" and self.reason is None:
            raise _fail("consent.reason", "a reason is required when consent is not sought")
        if self.action == "seek" and self.ground is not None:
            raise _fail("consent.ground", "must be empty when consent is sought")
        return self


class InformPlan(BaseModel, frozen=True, extra="forbid"):
    inform: bool = Field(description="Tell the child/family what was shared (golden rules 2 and 6)")
    reason_not: NonEmptyText | None = Field(default=None, description="Why telling them is not safe")

    @model_validator(mode="after")
    def _reason_when_not(self) -> Self:
        if not self.inform and self.reason_not is None:
            raise _fail("inform_subject.reason_not", "a reason is required when the subject is not told")
        return self


class ShareRequest(BaseModel, frozen=True, extra="forbid"):
    """One request to share (outbound) or to be given (inbound) information about a child."""

    request_id: RequestId = Field(
        description="Idempotency key chosen by the submitting agency; opaque, never a name or date"
    )
    direction: Direction = Field(default="outbound", description="Who initiated the request")
    urgency: Urgency = Field(description="emergency (share now), urgent or routine")
    purpose: Purpose
    disclosing_agency: AgencyId = Field(description="The agency that holds the information")
    recipient_agency: AgencyId = Field(description="The agency that would receive it")
    requested_by: ContactId = Field(description="The practitioner making the request (directory id)")
    subject: Subject
    third_parties: list[ThirdParty] = Field(default_factory=list, description="Other people mentioned")
    items: list[InformationItem] = Field(
        min_length=1, max_length=MAX_ITEMS, description="The information proposed for sharing"
    )
    lawful_basis: LawfulBasis = Field(description="UK GDPR Art. 6 lawful basis")
    special_condition: SpecialCondition | None = Field(
        default=None, description="Art. 9 / DPA 2018 Sch. 1 condition, needed for special category items"
    )
    agreement_ref: AgreementRef | None = Field(
        default=None,
        description="The data-sharing agreement or DPIA under which the request is made (its reference, "
        "e.g. ISA-2025-07): kept in the decision record (ICO data sharing code, Annex B)",
    )
    consent: ConsentPlan
    inform_subject: InformPlan

    @model_validator(mode="after")
    def _checked_at_intake(self, info: ValidationInfo) -> Self:
        """The rules of intake day, given as the validation context `today`: the id holds no date,
        and the dates fit the day.

        Only at intake: a request validated again later (a workflow replaying its input years on)
        must not start failing because its child has grown up, or because a rule was tightened.
        """
        today = (info.context or {}).get("today")
        if today is None:
            return self
        if holds_a_date(self.request_id):
            raise _fail("request_id", "an opaque reference without a date in it (a date may be a date of birth)")
        self.subject.check_date_of_birth(today)
        earliest = self.subject.date_of_birth - PREGNANCY
        for n, item in enumerate(self.items):
            if item.recorded_on > today + _TODAY_SLACK:
                raise _fail(f"items.{n}.recorded_on", "a date not in the future")
            if item.recorded_on < earliest:
                raise _fail(f"items.{n}.recorded_on", "a date after the subject's conception (at most 42 weeks "
                            "before the date of birth)")
        return self

    def digest(self) -> str:
        """What an idempotent re-submission must match: the request id is reused only with the same body."""
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()

    def at_intake(self, today: date) -> ShareRequest:
        """This request validated again with the checks that depend on the day of intake."""
        return ShareRequest.model_validate(self.model_dump(), context={"today": today})

    @model_validator(mode="after")
    def _guidance_rules(self) -> Self:
        if self.disclosing_agency == self.recipient_agency:
            raise _fail("recipient_agency", "an agency other than the disclosing agency")
        if len({i.id for i in self.items}) != len(self.items):
            raise _fail("items", "each item id used once")
        if len({t.ref for t in self.third_parties}) != len(self.third_parties):
            raise _fail("third_parties", "each ref used once")
        if any(i.special_category for i in self.items) and self.special_condition is None:
            raise _fail(
                "special_condition",
                "an Art. 9 / DPA 2018 Sch. 1 condition, because an item is special category data",
            )
        if self.lawful_basis == "consent" and self.consent.action != "seek":
            raise _fail("consent.action", "'seek' when the lawful basis is consent")
        if self.urgency == "emergency" and self.consent.action == "seek":
            raise _fail(
                "consent.action",
                "'do_not_seek' with a ground: an emergency request does not wait for consent",
            )
        return self
