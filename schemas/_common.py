"""Shared vocabulary: identifiers and the enumerations the guidance defines."""

from __future__ import annotations

import re
from typing import Annotated, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, StringConstraints
from pydantic_core import PydanticCustomError

# Identifiers travel into workflow ids, search attributes and logs, so they are restricted to
# opaque tokens: a name or a date of birth cannot be written as one by accident of formatting.
_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"
REQUEST_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{2,63}$"

# A request id is a plaintext key everywhere (workflow id, logs, the Web UI), so one that holds a
# date (e.g. `forename-surname-2014-07-09`) is refused: it is most likely a date of birth. Years
# 1900-2099, as YYYY-MM-DD, YYYYMMDD, DD-MM-YYYY, DDMMYYYY or DD-MM-YY with any of - . _ between.
_SEP = r"[-._]"
_DD, _MM, _YYYY = r"(0?[1-9]|[12][0-9]|3[01])", r"(0?[1-9]|1[0-2])", r"(19|20)[0-9]{2}"
_DATE_IN_ID = re.compile(
    rf"(?<![0-9])({_YYYY}{_SEP}{_MM}{_SEP}{_DD}|{_YYYY}(0[1-9]|1[0-2])(0[1-9]|[12][0-9]|3[01])"
    rf"|{_DD}{_SEP}{_MM}{_SEP}({_YYYY}|[0-9]{{2}})|(0[1-9]|[12][0-9]|3[01])(0[1-9]|1[0-2]){_YYYY})(?![0-9])"
)


def holds_a_date(request_id: str) -> bool:
    """Checked at intake only (`ShareRequest.at_intake`), never when an id is decoded later: a
    rule widened in a later release must not make a stored history or state undecodable."""
    return _DATE_IN_ID.search(request_id) is not None


RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN)]
AgencyId = Annotated[str, StringConstraints(pattern=_ID_PATTERN)]
ContactId = Annotated[str, StringConstraints(pattern=_ID_PATTERN)]
ItemId = Annotated[str, StringConstraints(pattern=_ID_PATTERN)]

# C0/C1 control characters other than tab and line breaks: terminal escapes, NULs and the like
# have no place in a record and can hide text from whoever reads it in a terminal or a log.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def no_control_characters(text: str) -> str:
    if _CONTROL.search(text):
        raise PydanticCustomError("control_characters", "control characters (other than tab and newline) "
                                  "are not allowed")
    return text


Text = AfterValidator(no_control_characters)
NonEmptyText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000), Text]

NHS_NUMBER_EXPECTED = "an NHS number: 10 digits, the last its modulus 11 check digit (quote it if it starts with 0)"


def nhs_number_digits(value: object) -> str | None:
    """The NHS number's 10 digits (spaces and hyphens as written dropped), or None if it is not one:
    the check digit is 11 less the sum of the first nine weighted 10 down to 2, modulo 11 (11 is 0;
    10 makes the number invalid)."""
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str):
        return None
    digits = text.replace(" ", "").replace("-", "")
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return None
    check = 11 - sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True)) % 11
    return digits if (0 if check == 11 else check) == int(digits[9]) else None


def _nhs_number(value: object) -> str:
    digits = nhs_number_digits(value)
    if digits is None:  # the value is never echoed: it is personal data
        raise PydanticCustomError("safeshare", f"subject.nhs_number: {NHS_NUMBER_EXPECTED}")
    return digits


# The consistent child identifier (Children Act 2004 s.16LC): personal data, held only where the
# request's content is (encrypted), and indexed by a keyed hash only (crypto.child_index_key).
NhsNumber = Annotated[str, BeforeValidator(_nhs_number)]

# A data-sharing agreement's or DPIA's reference (ICO data sharing code, Annex B): a document
# reference, kept plain in the record, so restricted to what such references are made of.
AgreementRef = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 ./:_-]{0,79}$")]

Urgency = Literal["emergency", "urgent", "routine"]

Direction = Literal["outbound", "inbound"]
"""outbound: the discloser offers information; inbound: the recipient asked for it."""

PurposeCategory = Literal[
    "child_protection_enquiry",  # Children Act 1989 s.47
    "child_in_need_assessment",  # Children Act 1989 s.17
    "early_help",
    "prevention_of_harm",
    "crime_prevention_or_detection",
    "multi_agency_risk_assessment",
    "court_proceedings",
]

LawfulBasis = Literal[
    "public_task",
    "legal_obligation",
    "vital_interests",
    "recognised_legitimate_interest",  # UK GDPR Art. 6(1)(ea), Data (Use and Access) Act 2025
    "legitimate_interests",
    "consent",
    "contract",
]

SpecialCondition = Literal[
    "dpa2018_sch1_para18_safeguarding_children",
    "dpa2018_sch1_para6_statutory_purposes",
    "dpa2018_sch1_para10_preventing_crime",
    "dpa2018_sch1_para2_health_or_social_care",
    "art9_2c_vital_interests",
    "art9_2a_explicit_consent",
]

Category = Literal[
    "identity_and_contact",
    "education",
    "attendance",
    "behaviour",
    "family_circumstances",
    "social_care",
    "physical_health",
    "mental_health",
    "sexual_health",
    "ethnicity",
    "religion_or_belief",
    "criminal_allegation",
]

SPECIAL_CATEGORIES: frozenset[str] = frozenset(
    {"physical_health", "mental_health", "sexual_health", "ethnicity", "religion_or_belief"}
)
"""UK GDPR Art. 9 special category data: sharing it needs an Art. 9 / DPA 2018 Sch. 1 condition."""

OverrideGround = Literal[
    "would_increase_risk_to_child",
    "would_cause_harmful_delay",
    "would_prejudice_crime_prevention",
    "person_cannot_consent",
]
"""The guidance's grounds for sharing without seeking (or against) consent."""

UNSAFE_TO_INFORM_GROUNDS: frozenset[str] = frozenset(
    {"would_increase_risk_to_child", "would_prejudice_crime_prevention"}
)
"""Grounds under which telling the family what was shared would defeat the override's purpose."""

ConsentStatus = Literal["not_sought", "awaited", "given", "refused", "withdrawn", "timed_out"]

Stage = Literal[
    "intake",
    "consent",
    "manager_review",
    "transmission",
    "retrospective_review",
    "receipt",
    "retention",
    "deleted",
]

STAGES: tuple[str, ...] = get_args(Stage)
"""Every stage, in lifecycle order: the vocabulary filters and metrics are checked against."""

Outcome = Literal["pending", "shared", "partly_shared", "not_shared", "withdrawn"]

DecisionKind = Literal["approve", "decline", "comment"]

RecordedDecision = Literal["approve", "decline", "comment", "withdraw"]
"""A decision as the record keeps it: a manager's, or the practitioner's withdrawal of the request."""
