"""Who may do what, on whose request: one table, read by the endpoint guard, rendered into
docs/SECURITY.md and turned into the isolation matrix by the tests.

A caller's role comes from the directory (an agency's own system, a contact's role, an
operator). Each rule names the action and whose requests it reaches (`Scope`): a role with no
rule for an action is refused it (403) whatever the request; a role whose rule does not reach
this request is told the request does not exist (404), so its existence is never revealed.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas import Directory


class Role(StrEnum):
    AGENCY = "agency"  # an agency's case-management system
    PRACTITIONER = "practitioner"
    MANAGER = "manager"
    DPO = "dpo"
    PARTNERSHIP_DPO = "partnership_dpo"
    INBOX = "inbox"  # a recipient agency's inbox
    OPERATOR = "operator"


class Action(StrEnum):
    SUBMIT = "submit"
    LIST = "list"
    STATUS = "status"
    RECORD = "record"
    CONSENT = "consent"
    OVERRIDE = "override"
    CHALLENGE = "challenge"
    DECIDE = "decide"
    HOLD = "hold"
    INBOX = "inbox"
    BUNDLE = "bundle"
    ACKNOWLEDGE = "acknowledge"
    EXPORT = "export"
    AUDIT_VERIFY = "audit_verify"


class Scope(StrEnum):
    """Whose requests a rule reaches, as the caller's agency stands to the request."""

    ANY = "any request"
    INVOLVED = "discloser or requester"  # the agency holding the information, or the one that asked
    DISCLOSER = "discloser"
    RECIPIENT = "recipient"
    PARTY = "discloser or recipient"
    CHAIN = "in its escalation chain"  # a manager of the disclosing agency
    OWN = "own agency only"  # no single request: the answer holds only the caller's agency's
    ALL = "whole partnership"  # no single request: every agency's (ids and counts, never content)


R, A, S = Role, Action, Scope
RULES: dict[tuple[Role, Action], Scope] = {
    (R.AGENCY, A.SUBMIT): S.OWN,
    (R.AGENCY, A.STATUS): S.INVOLVED,
    (R.AGENCY, A.INBOX): S.OWN,
    (R.AGENCY, A.BUNDLE): S.RECIPIENT,
    (R.AGENCY, A.ACKNOWLEDGE): S.RECIPIENT,
    (R.PRACTITIONER, A.SUBMIT): S.OWN,
    (R.PRACTITIONER, A.STATUS): S.INVOLVED,
    (R.PRACTITIONER, A.RECORD): S.INVOLVED,
    (R.PRACTITIONER, A.CONSENT): S.DISCLOSER,
    (R.PRACTITIONER, A.OVERRIDE): S.DISCLOSER,
    (R.PRACTITIONER, A.CHALLENGE): S.DISCLOSER,
    (R.MANAGER, A.STATUS): S.CHAIN,
    (R.MANAGER, A.RECORD): S.CHAIN,
    (R.MANAGER, A.DECIDE): S.CHAIN,
    (R.MANAGER, A.HOLD): S.CHAIN,
    (R.DPO, A.RECORD): S.PARTY,
    (R.DPO, A.HOLD): S.DISCLOSER,
    (R.DPO, A.EXPORT): S.OWN,
    (R.DPO, A.AUDIT_VERIFY): S.ALL,
    (R.PARTNERSHIP_DPO, A.RECORD): S.ANY,
    (R.PARTNERSHIP_DPO, A.HOLD): S.DISCLOSER,
    (R.PARTNERSHIP_DPO, A.EXPORT): S.ALL,
    (R.PARTNERSHIP_DPO, A.AUDIT_VERIFY): S.ALL,
    (R.INBOX, A.INBOX): S.OWN,
    (R.INBOX, A.BUNDLE): S.RECIPIENT,
    (R.INBOX, A.ACKNOWLEDGE): S.RECIPIENT,
    (R.OPERATOR, A.LIST): S.ALL,
    (R.OPERATOR, A.STATUS): S.ANY,
    (R.OPERATOR, A.HOLD): S.ANY,
}

# The actions that concern one request: their rules say whose.
ON_A_REQUEST = frozenset({A.STATUS, A.RECORD, A.CONSENT, A.OVERRIDE, A.CHALLENGE, A.DECIDE, A.HOLD,
                          A.BUNDLE, A.ACKNOWLEDGE})


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its directory id, role, and agency (None for an operator)."""

    id: str
    role: Role
    agency: str | None


@dataclass(frozen=True)
class Facts:
    """What the guard needs to know of a request: no content, only who is party to it."""

    request_id: str
    disclosing_agency: str
    recipient_agency: str
    direction: str = "outbound"

    @property
    def requesting_agency(self) -> str:
        return self.disclosing_agency if self.direction == "outbound" else self.recipient_agency


def principal_of(directory: Directory, principal_id: str) -> Principal | None:
    """The directory's entry for a caller, as a principal; None if it is not there."""
    if (agency := directory.agency(principal_id)) is not None:
        return Principal(agency.id, Role.AGENCY, agency.id)
    if (operator := directory.operator(principal_id)) is not None:
        return Principal(operator.id, Role.OPERATOR, None)
    if (found := directory.find_contact(principal_id)) is not None:
        agency, contact = found
        role = Role.PARTNERSHIP_DPO if contact.partnership_wide else Role(contact.role)
        return Principal(contact.id, role, agency.id)
    return None


def public_key_of(directory: Directory, principal_id: str) -> str | None:
    """The key a principal signs its tokens with: an agency's signing key, a person's own."""
    if (agency := directory.agency(principal_id)) is not None:
        return agency.signing_public_key
    if (operator := directory.operator(principal_id)) is not None:
        return operator.signing_public_key
    found = directory.find_contact(principal_id)
    return found[1].signing_public_key if found is not None else None


def reaches(scope: Scope, who: Principal, facts: Facts, directory: Directory) -> bool:
    """Whether a rule's scope takes in this request for this caller."""
    match scope:
        case Scope.ANY:
            return True
        case Scope.INVOLVED:
            return who.agency in (facts.disclosing_agency, facts.requesting_agency)
        case Scope.DISCLOSER:
            return who.agency == facts.disclosing_agency
        case Scope.RECIPIENT:
            return who.agency == facts.recipient_agency
        case Scope.PARTY:
            return who.agency in (facts.disclosing_agency, facts.recipient_agency)
        case Scope.CHAIN:
            discloser = directory.agency(facts.disclosing_agency)
            return discloser is not None and who.id in {m.id for m in discloser.managers()}
    return False  # OWN and ALL are not about one request


class Forbidden(Exception):
    """The caller's role may not take this action (403)."""


class NotYours(Exception):
    """The request is not the caller's, or does not exist: the same answer (404)."""


def rule(who: Principal, action: Action) -> Scope:
    """The caller's rule for the action; Forbidden if its role has none."""
    scope = RULES.get((who.role, action))
    if scope is None:
        raise Forbidden(f"{who.role.value}: may not {action.value}")
    return scope


def check(who: Principal, action: Action, facts: Facts, directory: Directory) -> None:
    """The guard for an action on one request: Forbidden (the role) before NotYours (the request)."""
    if not reaches(rule(who, action), who, facts, directory):
        raise NotYours(f"request {facts.request_id}: not found")


def render_table() -> str:
    """The table as Markdown, for docs/SECURITY.md (a test keeps the two the same)."""
    roles = list(Role)
    lines = ["| action | " + " | ".join(r.value for r in roles) + " |", "|---" * (len(roles) + 1) + "|"]
    for action in Action:
        cells = [RULES[(r, action)].value if (r, action) in RULES else "—" for r in roles]
        lines.append(f"| {action.value} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
