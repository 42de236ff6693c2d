"""The DPO's view of decision records: the fields an ICO data-sharing record needs, never content."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from schemas import DecisionRecord, text_sha256
from store import AuditEntry, ContentDestroyed, NotFound, Store

from ._files import InputError

# Golden rule 7 and the ICO data-sharing code: why, on what basis, who decided, what went to
# whom, when, the outcome, and when it is deleted. Hashes and categories only: no content.
EXPORT_FIELDS = (
    "request_id", "accepted_at", "direction", "urgency", "purpose", "lawful_basis", "special_condition",
    "consent_status", "override_ground", "override_by", "requested_by", "disclosing_agency",
    "recipient_agency", "categories_shared", "items_shared", "withheld_identities", "decided_by",
    "decided_at", "outcome", "shared_at", "bundle_sha256", "acknowledged_at", "subject_informed",
    "retention_until", "deleted_at",
)
TRAIL_FIELDS = ("seq", "at", "event", "actor", "data", "hash")
# The audit entry each manager decision makes, in the same update as its DecisionEntry.
DECISION_EVENTS = ("manager_approve", "manager_decline", "manager_comment")
REASON_MISMATCH = "reason does not match its recorded hash"


# The days an export may name: nothing was accepted before 1970, and the day after --to must
# still be a date (the window ends at its midnight).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date.max - timedelta(days=1)


NOTIFICATION_FIELDS = ("kind", "to_contact", "channel", "created_at", "sent_at", "failed_at", "failure")


async def full_record(store: Store, request_id: str) -> dict[str, Any] | None:
    """One request's full trail, as the requester, its deciding chain and its DPO read it: the
    decision record with its ICO fields, each decision's reason checked against its hash, every
    audit entry with its note, and the notifications; None if the store knows nothing of it."""
    body = await store.record(request_id)
    trail = await store.audit_trail(request_id)
    if body is None and not trail:
        return None
    sent = await store.outbox_for(request_id)
    accepted = await store.accepted_at(request_id)
    notes, destroyed = await _notes(store, request_id)
    record = DecisionRecord.model_validate_json(body) if body else None
    return {
        "record": record.model_dump(mode="json") if record else None,
        "ico": export_row(record, accepted) if record and accepted else None,
        "decisions": decision_reasons(record, trail, notes),
        "trail": trail_with_notes(trail, notes),
        "notes_destroyed": notes is None,
        "notes_destroyed_at": destroyed.isoformat() if destroyed else None,
        "notifications": [{k: getattr(r, k) for k in NOTIFICATION_FIELDS} for r in sent],
    }


async def _notes(store: Store, request_id: str) -> tuple[dict[str, str] | None, datetime | None]:
    """The request's notes, or None and when they were shredded with its data key."""
    try:
        return await store.notes_for(request_id), None
    except ContentDestroyed as gone:
        return None, gone.destroyed_at
    except NotFound:  # a record without stored content (none was ever accepted): no notes
        return {}, None


def parse_day(option: str, value: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise InputError([f"{option}: a date YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY} expected"])
    return day


def export_window(start: str, end: str, names: tuple[str, str] = ("--from", "--to")) -> tuple[datetime, datetime]:
    """--from and --to are whole UTC days, both included: [start 00:00, the day after end 00:00).
    `names` are what the caller calls them (the CLI's options, the service's query parameters)."""
    first, last = parse_day(names[0], start), parse_day(names[1], end)
    if last < first:
        raise InputError([f"{names[1]}: a date on or after {names[0]} expected"])
    return datetime.combine(first, time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def export_row(record: DecisionRecord, accepted_at: datetime) -> dict[str, Any]:
    decisions = [d for d in record.decisions if d.decision != "comment"]
    # Who decided: the managers' decisions; an emergency share-now was the requester's, under policy.
    decided_by = [f"{d.by} ({d.decision}{', retrospective' if d.kind == 'retrospective_review' else ''})"
                  for d in decisions]
    if record.shared_at is not None and not any(d.kind == "approval" for d in decisions):
        decided_by.insert(0, f"{record.requested_by} (emergency share-now)")
    approvals = [d.at for d in decisions if d.kind == "approval"]
    decided_at = approvals[0] if approvals else record.shared_at
    return {
        "request_id": record.request_id,
        "accepted_at": _iso(accepted_at),
        "direction": record.direction,
        "urgency": record.urgency,
        "purpose": record.purpose,
        "lawful_basis": record.lawful_basis,
        "special_condition": record.special_condition,
        "consent_status": record.consent_status,
        "override_ground": record.override_ground,
        "override_by": record.override_by,
        "requested_by": record.requested_by,
        "disclosing_agency": record.disclosing_agency,
        "recipient_agency": record.recipient_agency,
        "categories_shared": list(record.categories_shared),
        "items_shared": [i.id for i in record.items_shared],
        "withheld_identities": record.withheld_identities,
        "decided_by": decided_by,
        "decided_at": _iso(decided_at),
        "outcome": record.outcome,
        "shared_at": _iso(record.shared_at),
        "bundle_sha256": record.bundle_sha256,
        "acknowledged_at": _iso(record.acknowledged_at),
        "subject_informed": record.subject_informed,
        "retention_until": _iso(record.retention_until),
        "deleted_at": _iso(record.deleted_at),
    }


def render(rows: list[dict[str, Any]], fmt: Literal["csv", "json"]) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "; ".join(v) if isinstance(v, list) else ("" if v is None else v) for k, v in row.items()})
    return buffer.getvalue()


def trail_with_notes(trail: list[AuditEntry], notes: dict[str, str] | None) -> list[dict[str, Any]]:
    """Each audit entry beside its note (reasons, override reason, challenge text, hold reason);
    notes None: shredded with the request's data key."""
    return [{**{k: getattr(r, k) for k in TRAIL_FIELDS}, "note": notes.get(r.step) if notes else None} for r in trail]


def decision_reasons(
    record: DecisionRecord | None, trail: list[AuditEntry], notes: dict[str, str] | None
) -> list[dict[str, Any]]:
    """The record's decisions with their reasons, each checked against its reason_sha256.

    The n-th decision is the n-th decision entry of the trail: one update makes both, in order.
    reason_matches is None once the notes are destroyed, False if the text is missing or altered.
    """
    steps = [r.step for r in trail if r.event in DECISION_EVENTS]
    rows = []
    for n, d in enumerate(record.decisions if record else []):
        reason = notes.get(steps[n]) if notes is not None and n < len(steps) else None
        rows.append({
            "at": _iso(d.at), "by": d.by, "decision": d.decision, "kind": d.kind, "items": d.items,
            "reason_sha256": d.reason_sha256, "reason": reason,
            "reason_matches": None if notes is None else reason is not None and text_sha256(reason) == d.reason_sha256,
        })
    return rows
