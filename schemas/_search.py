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


# What a visibility query may filter on: Temporal's own attributes and ours.
_QUERY_NAMES = frozenset({"WorkflowType", "WorkflowId", "ExecutionStatus", *SEARCH_ATTRIBUTES})
Condition = tuple[str, str, str | int | bool]  # name, "=" or "!=", value


def visibility_query(*conditions: Condition) -> str:
    """A Temporal visibility query: every condition, `name op value`, joined by AND.

    Names come from a fixed set and every value is written as a literal, so no value, however it
    was checked before, can add a condition of its own (a query is never pasted together).
    """
    clauses = []
    for name, op, value in conditions:
        if name not in _QUERY_NAMES or op not in ("=", "!="):
            raise ValueError(f"visibility query: {name} {op} is not a condition this query language allows here")
        clauses.append(f"{name} {op} {_literal(value)}")
    return " AND ".join(clauses)


def _literal(value: str | int | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # The server's parser also reads backslash escapes, which do not round-trip: refused, not guessed.
    if "\\" in value or not value.isprintable():
        raise ValueError("visibility query: a value may not hold a backslash or a control character")
    return "'" + value.replace("'", "''") + "'"
