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


def workflow_id(request_id: str) -> str:
    return f"share-{request_id}"
