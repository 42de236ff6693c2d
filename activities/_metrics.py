"""Safeshare's own metrics, recorded through the worker's Temporal metric meter.

They reach the worker's Prometheus endpoint beside Temporal's (`SAFESHARE_METRICS_PORT`); with
no endpoint configured the meter is a no-op. Each is counted where the step first takes effect
(the store said it was new), so a retried activity does not count twice. Labels are event
names, urgencies, kinds and suites from this code: never ids, names or content.
"""

from __future__ import annotations

from temporalio import activity

# Events that are worth a metric of their own, beyond `safeshare_events{event}`.
_ESCALATIONS = {"manager_escalated": "manager", "receipt_escalated": "receipt"}
_OVERDUE = {"decision_overdue": "decision", "receipt_escalated": "receipt"}


def _count(name: str, description: str, **labels: str) -> None:
    activity.metric_meter().create_counter(name, description).add(1, labels)


def request_accepted(urgency: str, direction: str) -> None:
    _count("safeshare_requests_accepted", "Share requests accepted at intake",
           urgency=urgency, direction=direction)


def event_recorded(event: str) -> None:
    _count("safeshare_events", "Audited steps recorded, by event", event=event)
    if event in _ESCALATIONS:
        _count("safeshare_escalations", "Escalations for want of an answer", kind=_ESCALATIONS[event])
    if event in _OVERDUE:
        _count("safeshare_overdue_flagged", "Requests flagged overdue", kind=_OVERDUE[event])
    if event == "content_destroyed":
        _count("safeshare_deletions", "Requests whose content was destroyed at retention expiry")


def bundle_delivered(hpke_suite: str) -> None:
    _count("safeshare_deliveries", "Sealed bundles delivered", hpke_suite=hpke_suite)
