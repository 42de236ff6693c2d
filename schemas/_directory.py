"""The partnership's directory: agencies, their roles, channels, contacts and public keys."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, Field, model_validator
from pydantic_core import PydanticCustomError

from ._common import AgencyId, ContactId

AgencyKind = Literal[
    "school", "gp", "health_trust", "police", "social_care", "local_authority", "voluntary", "probation"
]
ContactRole = Literal["practitioner", "manager", "dpo", "inbox"]
NotifyChannel = Literal["email", "webhook"]
DeliveryChannel = Literal["inbox", "webhook"]


def _check_webhook(owner: str, channel_field: str, channel: str, url: str | None) -> None:
    if (channel == "webhook") != (url is not None):
        raise PydanticCustomError(
            "safeshare", f"webhook_url ({owner}): required when {channel_field} is webhook, and only then"
        )
    if url is not None and not url.startswith(("https://", "http://")):
        raise PydanticCustomError("safeshare", f"webhook_url ({owner}): an http(s) URL expected")


class Contact(BaseModel, frozen=True, extra="forbid"):
    id: ContactId = Field(description="Directory id used on the command line and in records")
    role: ContactRole = Field(description="What this contact does in the process")
    email: str = Field(min_length=3, max_length=254, description="Where notifications go")
    tier: int | None = Field(
        default=None, ge=1, le=5, description="For managers: escalation tier (1 is asked first)"
    )
    signing_public_key: str | None = Field(
        default=None,
        description="Base64 raw Ed25519 key this person signs their actions and their service tokens with",
    )
    partnership_wide: bool = Field(
        default=False, description="For a DPO: reads every agency's records, not only their own agency's"
    )

    @model_validator(mode="after")
    def _tier_for_managers(self) -> Self:
        if (self.role == "manager") != (self.tier is not None):
            raise PydanticCustomError("safeshare", "tier: required for managers and only for managers")
        if self.partnership_wide and self.role != "dpo":
            raise PydanticCustomError("safeshare", "partnership_wide: only for a dpo")
        return self

    # --- notification channel (issue 4) ---------------------------------------------------------
    notify: NotifyChannel = Field(
        default="email", description="How notifications reach this contact: e-mail (default) or a webhook"
    )
    webhook_url: str | None = Field(
        default=None, max_length=2048, description="For notify: webhook, the URL notifications are POSTed to"
    )

    @model_validator(mode="after")
    def _webhook_for_notify(self) -> Self:
        _check_webhook(f"contact {self.id}", "notify", self.notify, self.webhook_url)
        return self


class Agency(BaseModel, frozen=True, extra="forbid"):
    id: AgencyId
    name: str = Field(min_length=1, max_length=200, description="The organisation's name")
    kind: AgencyKind
    safeguarding_role: bool = Field(
        description="Has a statutory or recognised role in safeguarding; only such agencies may receive"
    )
    delivery: DeliveryChannel = Field(default="inbox", description="How sealed bundles reach it")
    hpke_suite: Literal["X25519", "MLKEM768_X25519"] = Field(
        default="X25519",
        description="HPKE KEM for bundles sealed to it; MLKEM768_X25519 is the post-quantum hybrid",
    )
    hpke_public_key: str = Field(description="Base64 raw public key bundles are sealed to")
    signing_public_key: str = Field(description="Base64 raw Ed25519 key its bundles are signed with")
    contacts: list[Contact] = Field(default_factory=list)

    def contact(self, contact_id: str) -> Contact | None:
        return next((c for c in self.contacts if c.id == contact_id), None)

    def with_role(self, role: ContactRole) -> list[Contact]:
        return [c for c in self.contacts if c.role == role]

    def managers(self) -> list[Contact]:
        return sorted(self.with_role("manager"), key=lambda c: c.tier or 0)

    # --- delivery channel (issue 4) -------------------------------------------------------------
    webhook_url: str | None = Field(
        default=None, max_length=2048,
        description="For delivery: webhook, the URL sealed bundles are POSTed to (the store inbox keeps a copy)",
    )

    @model_validator(mode="after")
    def _webhook_for_delivery(self) -> Self:
        _check_webhook(f"agency {self.id}", "delivery", self.delivery, self.webhook_url)
        return self


class Operator(BaseModel, frozen=True, extra="forbid"):
    """Who runs the deployment: overdue lists, legal holds; never content."""

    id: ContactId = Field(description="Directory id, one namespace with contacts and agencies")
    email: str = Field(min_length=3, max_length=254, description="Where notifications go")
    signing_public_key: str | None = Field(
        default=None, description="Base64 raw Ed25519 key this operator signs their service tokens with"
    )


class Directory(BaseModel, frozen=True, extra="forbid"):
    agencies: list[Agency]
    operators: list[Operator] = Field(default_factory=list, description="The deployment's operators")

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [a.id for a in self.agencies]
        contact_ids = [c.id for a in self.agencies for c in a.contacts] + [o.id for o in self.operators]
        if len(set(ids)) != len(ids):
            raise PydanticCustomError("safeshare", "agencies: each agency id used once")
        if len(set(contact_ids)) != len(contact_ids):
            raise PydanticCustomError("safeshare", "contacts: each contact id used once in the directory")
        if set(ids) & set(contact_ids):
            # Signers are named by id (a manager by contact id, an agency by agency id): one namespace.
            raise PydanticCustomError("safeshare", "contacts: a contact id must differ from every agency id")
        return self

    def agency(self, agency_id: str) -> Agency | None:
        return next((a for a in self.agencies if a.id == agency_id), None)

    def operator(self, operator_id: str) -> Operator | None:
        return next((o for o in self.operators if o.id == operator_id), None)

    def find_contact(self, contact_id: str) -> tuple[Agency, Contact] | None:
        for agency in self.agencies:
            if (found := agency.contact(contact_id)) is not None:
                return agency, found
        return None
