"""The search attributes operators filter on. None of them may ever hold personal data."""

from __future__ import annotations

from typing import Literal

SEARCH_ATTRIBUTES: dict[str, Literal["Keyword", "Int", "Bool", "Datetime"]] = {
    "ShareStage": "Keyword",
    "ShareOutcome": "Keyword",
    "Urgency": "Keyword",
    "DisclosingAgency": "Keyword",
    "RecipientAgency": "Keyword",
    "ConsentBasis": "Keyword",
    "EscalationTier": "Int",
    "Overdue": "Bool",
    "RetentionUntil": "Datetime",
}

TASK_QUEUE = "safeshare"


# A share request's workflow id is its request id behind this prefix: chosen by the agency, an
# opaque token by the schema's rule, so the id carries no personal data.
WORKFLOW_ID_PREFIX = "share-"


def workflow_id(request_id: str) -> str:
    return WORKFLOW_ID_PREFIX + request_id


def request_id_of(workflow_id: str) -> str:
    return workflow_id.removeprefix(WORKFLOW_ID_PREFIX)
