"""Intake checks that need the directory: who may send, who may receive, and who may submit."""

from __future__ import annotations

from ._directory import Directory
from ._request import ShareRequest


class IntakeError(ValueError):
    """A request that must not start. `field` names where; the message never holds its value."""

    def __init__(self, field: str, expected: str) -> None:
        super().__init__(f"{field}: {expected}")
        self.field = field
        self.expected = expected


def check_against_directory(request: ShareRequest, directory: Directory) -> None:
    discloser = directory.agency(request.disclosing_agency)
    recipient = directory.agency(request.recipient_agency)
    if discloser is None:
        raise IntakeError("disclosing_agency", "an agency in the directory")
    if recipient is None:
        raise IntakeError("recipient_agency", "an agency in the directory")
    if not recipient.safeguarding_role:
        # Key question 7: only an agency with a role in safeguarding is entitled to receive.
        raise IntakeError("recipient_agency", "an agency with a safeguarding role")
    requester_agency = discloser if request.direction == "outbound" else recipient
    requester = requester_agency.contact(request.requested_by)
    if requester is None:
        raise IntakeError(
            "requested_by",
            f"a practitioner of the {'disclosing' if request.direction == 'outbound' else 'recipient'} agency",
        )
    if request.lawful_basis == "recognised_legitimate_interest" and discloser.is_public_authority:
        # UK GDPR Art. 6(1)(ea), from the Data (Use and Access) Act 2025: not for a public authority
        # performing its tasks, as sharing for safeguarding is.
        raise IntakeError(
            "lawful_basis",
            f"a basis other than recognised_legitimate_interest: {discloser.id} is a public authority, which "
            "cannot rely on it in performing its public tasks (UK GDPR Art. 6(1)(ea)); public_task or "
            "legal_obligation is expected",
        )
    if not discloser.managers():
        raise IntakeError("disclosing_agency", "an agency with at least one manager to consult")


def submitter_key(request: ShareRequest, directory: Directory, by: str | None) -> str:
    """The public key a submission signed by `by` must verify under: the requesting agency's own
    (its system), or the requester's own. Anyone else cannot submit in that agency's name."""
    requesting = directory.agency(request.disclosing_agency if request.direction == "outbound"
                                  else request.recipient_agency)
    if requesting is None:
        raise IntakeError("disclosing_agency" if request.direction == "outbound" else "recipient_agency",
                          "an agency in the directory")
    if by is None:
        raise IntakeError("submission", f"signed by {requesting.id} or the requester {request.requested_by} "
                          "(submit with --key)")
    if by == requesting.id:
        return requesting.signing_public_key
    requester = requesting.contact(request.requested_by)
    if by != request.requested_by or requester is None:
        raise IntakeError("submission.by", f"{requesting.id} itself or the requester {request.requested_by}; "
                          f"{by} cannot submit in their name")
    if requester.signing_public_key is None:
        raise IntakeError("submission.by", f"{by} has no signing key in the directory; {requesting.id} signs instead")
    return requester.signing_public_key
