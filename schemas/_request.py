"""The share request as a practitioner submits it."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from ._common import (
    SPECIAL_CATEGORIES,
    AgencyId,
    Category,
    ContactId,
    Direction,
    ItemId,
    LawfulBasis,
    NonEmptyText,
    OverrideGround,
    PurposeCategory,
    RequestId,
    SpecialCondition,
    Text,
    Urgency,
)

MAX_CONTENT_CHARS = 20_000
MAX_ITEMS = 50


def _fail(field: str, expected: str) -> PydanticCustomError:
    # The message names the field and what is expected; pydantic's own errors carry the input
    # value, which is why the CLI renders errors itself and these never include it.
    return PydanticCustomError("safeshare", "{field}: {expected}", {"field": field, "expected": expected})


class Purpose(BaseModel, frozen=True, extra="forbid"):
    category: PurposeCategory = Field(description="Why the information is needed, from the guidance's list")
    statement: NonEmptyText = Field(
        description="Why sharing is necessary and proportionate for that purpose (golden rule 7)"
    )


class Subject(BaseModel, frozen=True, extra="forbid"):
    name: NonEmptyText = Field(description="The child's full name")
    date_of_birth: date = Field(description="Date of birth; retention is keyed to it")
    looked_after: bool = Field(default=False, description="A looked-after child: longer retention")


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
    consent: ConsentPlan
    inform_subject: InformPlan

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
