"""The names a share request's workflow is reached by: its type and task queue, its Updates and
Queries, its search attributes and workflow ids. The workflow and every client use these, so each
name is written once. No search attribute may ever hold personal data."""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from temporalio.common import SearchAttributeKey

WORKFLOW_TYPE: Final = "ShareRequest"


class UpdateName:
    """The actors' actions, each a Workflow Update of this name."""

    CONSENT: Final = "record_consent"
    OVERRIDE: Final = "record_override"
    DECIDE: Final = "decide"
    ACKNOWLEDGE: Final = "acknowledge"
    LEGAL_HOLD: Final = "legal_hold"
    CHALLENGE: Final = "challenge"
    RECALL: Final = "recall"
    WITHDRAW: Final = "withdraw"


class QueryName:
    STATUS: Final = "status"
    REQUEST_SHA256: Final = "request_sha256"


class SearchKey:
    """The search attributes operators filter on, typed."""

    STAGE: Final = SearchAttributeKey.for_keyword("ShareStage")
    OUTCOME: Final = SearchAttributeKey.for_keyword("ShareOutcome")
    URGENCY: Final = SearchAttributeKey.for_keyword("Urgency")
    DISCLOSING: Final = SearchAttributeKey.for_keyword("DisclosingAgency")
    RECIPIENT: Final = SearchAttributeKey.for_keyword("RecipientAgency")
    CONSENT_BASIS: Final = SearchAttributeKey.for_keyword("ConsentBasis")
    TIER: Final = SearchAttributeKey.for_int("EscalationTier")
    OVERDUE: Final = SearchAttributeKey.for_bool("Overdue")
    RETENTION_UNTIL: Final = SearchAttributeKey.for_datetime("RetentionUntil")
    ALL: Final = (STAGE, OUTCOME, URGENCY, DISCLOSING, RECIPIENT, CONSENT_BASIS, TIER, OVERDUE, RETENTION_UNTIL)


_KIND: dict[type, Literal["Keyword", "Int", "Bool", "Datetime"]] = {
    str: "Keyword", int: "Int", bool: "Bool", datetime: "Datetime",
}
# Name and type of each, as the server registers them.
SEARCH_ATTRIBUTES: dict[str, Literal["Keyword", "Int", "Bool", "Datetime"]] = {
    key.name: _KIND[key.value_type] for key in SearchKey.ALL
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
