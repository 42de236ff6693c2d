"""The DPO's view of decision records: the fields an ICO data-sharing record needs, never content."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

from schemas import DecisionRecord, text_sha256
from store import AuditEntry

from ._files import InputError

# Golden rule 7 and the ICO data-sharing code: why, on what basis, who decided, what went to
# whom, when, the outcome, and when it is deleted. Hashes and categories, never the items' content;
# the reasons, the judgement and why it was necessary come from the store's encrypted notes.
EXPORT_FIELDS = (
    "request_id", "accepted_at", "direction", "urgency", "purpose", "why_necessary", "lawful_basis",
    "special_condition", "agreement_ref", "consent_status", "override_ground", "override_by", "requested_by",
    "disclosing_agency", "recipient_agency", "categories_shared", "items_shared", "withheld_identities",
    "decided_by", "decided_at", "outcome", "reasons", "duty_to_share_judgement", "shared_at", "bundle_sha256",
    "acknowledged_at", "recalled_at", "recalled_by", "subject_informed", "retention_until", "deleted_at",
)
# What the ICO data sharing code's Annex B says a record of a decision holds, and the column of
# the export that holds each.
ANNEX_B = {
    "requester": "requested_by",
    "purpose": "purpose",
    "lawful basis": "lawful_basis",
    "why the sharing is necessary": "why_necessary",
    "special category condition": "special_condition",
    "data-sharing agreement or DPIA": "agreement_ref",
    "retention": "retention_until",
    "decision": "outcome",
    "reasons": "reasons",
    "decision-maker": "decided_by",
    "date of the decision": "decided_at",
}
TRAIL_FIELDS = ("seq", "at", "event", "actor", "data", "hash")
# The audit entry each decision makes, in the same update as its DecisionEntry; a decision not to
# share is followed at once by its s.16LA judgement's entry.
DECISION_EVENTS = ("manager_approve", "manager_decline", "manager_comment", "request_withdrawn")
JUDGEMENT_EVENT = "duty_to_share_judgement"
DESTROYED = "(destroyed)"
REASON_MISMATCH = "reason does not match its recorded hash"
JUDGEMENT_MISMATCH = "judgement does not match its recorded hash"


@dataclass(frozen=True)
class RecordTexts:
    """The free text of a record, decrypted from the store: why sharing was necessary (the
    request's purpose statement), each decision's reasons and s.16LA judgement."""

    why_necessary: str | None
    reasons: list[str]
    judgements: list[str]

    @classmethod
    def of(cls, record: DecisionRecord | None, trail: list[AuditEntry], notes: dict[str, str] | None,
           request_json: bytes | None) -> RecordTexts:
        """notes None: shredded with the request's data key at deletion, like the request itself."""
        if notes is None:
            return cls(DESTROYED, [DESTROYED], [DESTROYED])
        rows = decision_reasons(record, trail, notes)
        return cls(
            why_necessary=_statement(request_json),
            reasons=[f"{d['by']} ({d['decision']}): {d['reason']}" for d in rows if d["reason"] is not None],
            judgements=[f"{d['by']}: {d['judgement']}" for d in rows if d["judgement"] is not None],
        )


def _statement(request_json: bytes | None) -> str | None:
    try:
        return json.loads(request_json)["purpose"]["statement"] if request_json else None
    except (ValueError, KeyError, TypeError):  # not a request as this code knows one: not guessed at
        return None


# The days an export may name: nothing was accepted before 1970, and the day after --to must
# still be a date (the window ends at its midnight).
FIRST_DAY, LAST_DAY = date(1970, 1, 1), date.max - timedelta(days=1)


def parse_day(option: str, value: str) -> date:
    try:
        day = date.fromisoformat(value)
    except ValueError:
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        raise InputError([f"{option}: a date YYYY-MM-DD from {FIRST_DAY} to {LAST_DAY} expected"])
    return day


def export_window(start: str, end: str) -> tuple[datetime, datetime]:
    """--from and --to are whole UTC days, both included: [start 00:00, the day after end 00:00)."""
    first, last = parse_day("--from", start), parse_day("--to", end)
    if last < first:
        raise InputError(["--to: a date on or after --from expected"])
    return datetime.combine(first, time(), UTC), datetime.combine(last + timedelta(days=1), time(), UTC)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def export_row(record: DecisionRecord, accepted_at: datetime, texts: RecordTexts | None = None) -> dict[str, Any]:
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
        "why_necessary": texts.why_necessary if texts else None,
        "lawful_basis": record.lawful_basis,
        "special_condition": record.special_condition,
        "agreement_ref": record.agreement_ref,
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
        "reasons": texts.reasons if texts else [],
        "duty_to_share_judgement": texts.judgements if texts else [],
        "shared_at": _iso(record.shared_at),
        "bundle_sha256": record.bundle_sha256,
        "acknowledged_at": _iso(record.acknowledged_at),
        "recalled_at": _iso(record.recalled_at),
        "recalled_by": record.recalled_by,
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
    at = {r.step: n for n, r in enumerate(trail)}
    steps = [r.step for r in trail if r.event in DECISION_EVENTS]
    rows = []
    for n, d in enumerate(record.decisions if record else []):
        step = steps[n] if n < len(steps) else None
        after = trail[at[step] + 1] if step is not None and at[step] + 1 < len(trail) else None
        judged = after.step if after is not None and after.event == JUDGEMENT_EVENT else None
        reason = notes.get(step) if notes is not None and step else None
        judgement = notes.get(judged) if notes is not None and judged else None
        rows.append({
            "at": _iso(d.at), "by": d.by, "decision": d.decision, "kind": d.kind, "items": d.items,
            "reason_sha256": d.reason_sha256, "reason": reason,
            "reason_matches": None if notes is None else reason is not None and text_sha256(reason) == d.reason_sha256,
            "judgement_sha256": d.judgement_sha256, "judgement": judgement,
            "judgement_matches": None if notes is None or d.judgement_sha256 is None
            else judgement is not None and text_sha256(judgement) == d.judgement_sha256,
        })
    return rows
