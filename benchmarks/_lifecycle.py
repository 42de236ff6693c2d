"""Throughput, latency and history cost: requests driven through their whole lifecycle by
automated actors, alternating with the baseline workflow in the same run."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

from clients import history_runs, read_request
from schemas import ShareRequest, workflow_id
from workers import ROUTINE, SCRIPTS, Actors, Pace, eventually

from ._stack import ROOT, Stack, cpu_seconds, retention_passed_dob

# How often an automated actor looks whether it is awaited: each look is a workflow query, which
# costs the server and the worker as much as a small workflow task. Latencies are taken from the
# server's event times, so this bounds only how soon an actor acts, not what is measured.
POLL = 0.1
WAIT = 300  # seconds any one stage may take before the run fails, saying where it stopped
EXAMPLES = ROOT / "examples" / "requests"


def request(name: str, prefix: str) -> ShareRequest:
    req = read_request(EXAMPLES / f"{name}.yaml")
    subject = req.subject.model_copy(update={"date_of_birth": retention_passed_dob(datetime.now(UTC).date())})
    # Digits become letters: a request id must not look like a date.
    rid = f"{prefix}-{uuid.uuid4().hex[:12].translate(str.maketrans('0123456789', 'ghijklmnop'))}"
    return req.model_copy(update={"request_id": rid, "subject": subject})


def actors(stack: Stack, every: float = POLL) -> Actors:
    """The example requests' actors (workers/_actors.py) on the share client, looking every `every`
    seconds. They act on the status query's stage, as the baseline's actors do, so that both
    workers answer the same queries."""
    assert stack.share is not None
    return Actors(stack.share, stack.settings, act_on="status", timeout=WAIT, pace=Pace(first=every, most=every))


async def routine(actors: Actors, prefix: str) -> str:
    """A routine request: consent given, the DSL approves, the recipient acknowledges; then its
    record, retention (already passed), deletion and tombstone."""
    req = request("routine-consent", prefix)
    await actors.submit(req)
    await actors.drive(req, ROUTINE)
    await actors.client.wait(req.request_id)
    return workflow_id(req.request_id)


@dataclass
class BaselineActors:
    client: Client
    task_queue: str

    async def until(self, wf_id: str, stage: str) -> None:
        handle = self.client.get_workflow_handle(wf_id)
        await eventually(f"baseline {wf_id}: {stage}", lambda: handle.query("status", result_type=str),
                         lambda seen: seen == stage, timeout=WAIT, pace=Pace(first=POLL, most=POLL))

    async def routine(self, prefix: str) -> str:
        wf_id = f"{prefix}-{uuid.uuid4().hex[:12]}"
        handle = await self.client.start_workflow("BaselineShare", 1, id=wf_id, task_queue=self.task_queue)
        for stage, update in (("consent", "record_consent"), ("manager_review", "decide"),
                              ("receipt", "acknowledge")):
            await self.until(wf_id, stage)
            await handle.execute_update(update, "actor", result_type=str)
        await handle.result()
        return wf_id


async def drive(n: int, concurrency: int, one: Callable[[], Awaitable[str]]) -> tuple[float, list[str]]:
    """n lifecycles, at most `concurrency` at once; the elapsed wall time and the workflow ids."""
    sem = asyncio.Semaphore(concurrency)

    async def bounded() -> str:
        async with sem:
            return await one()

    start = time.perf_counter()
    ids = await asyncio.gather(*(bounded() for _ in range(n)))
    return time.perf_counter() - start, list(ids)


async def lifecycle(stack: Stack, n: int, concurrency: int, rounds: int, baseline_queue: str,
                    pids: dict[str, int]) -> dict[str, Any]:
    """Alternating rounds (share, baseline, baseline, share, ...: ABBA cancels a linear drift).
    Each worker's CPU time per lifecycle is counted too: it does not depend on what else runs."""
    assert stack.raw is not None  # the baseline has no codec
    share, base = actors(stack), BaselineActors(stack.raw, baseline_queue)
    per_round = max(1, n // rounds)
    elapsed = {"share": 0.0, "baseline": 0.0}
    done = {"share": 0, "baseline": 0}
    cpu = {"share": 0.0, "baseline": 0.0}
    ids: dict[str, list[str]] = {"share": [], "baseline": []}
    # Warm up both workers (imports, sandbox, first connections) outside the measurement.
    await drive(min(4, per_round), 4, lambda: routine(share, "warm"))
    await drive(min(4, per_round), 4, lambda: base.routine("warm-base"))
    order = ["share", "baseline", "baseline", "share"]
    for r in range(rounds):
        kind = order[r % 4] if rounds > 1 else "share"
        for which in ([kind, "baseline" if kind == "share" else "share"]):
            fn = (lambda: routine(share, "life")) if which == "share" else (lambda: base.routine("base"))
            before = cpu_seconds(pids[which])
            t, got = await drive(per_round, concurrency, fn)
            cpu[which] += cpu_seconds(pids[which]) - before
            elapsed[which] += t
            done[which] += len(got)
            ids[which] += got
    rates = {k: done[k] / elapsed[k] for k in done}
    return {
        "requests": done, "seconds": elapsed, "concurrency": concurrency, "rounds": rounds,
        "rate_per_s": rates, "ratio": rates["share"] / rates["baseline"], "ids": ids,
        "worker_cpu_ms_per_request": {k: cpu[k] / done[k] * 1000 for k in done},
    }


# --- what the server holds: histories, stage latencies ----------------------------------------------


def history_cost(histories: list[WorkflowHistory]) -> dict[str, Any]:
    events = [e for h in histories for e in h.events]
    kinds = Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events)
    return {"runs": len(histories), "events": len(events), "bytes": sum(len(e.SerializeToString()) for e in events),
            "kinds": dict(sorted(kinds.items()))}


def _stage_of(event: Any) -> str | None:
    fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    return json.loads(fields["ShareStage"].data) if "ShareStage" in fields else None


def stage_times(histories: list[WorkflowHistory]) -> dict[str, float]:
    """Seconds the system took at each step, from the server's own event times (no polling error):
    from an actor's action (or the submission) until the next actor is awaited."""
    marks: dict[str, datetime] = {}
    updates: list[datetime] = []
    activities: dict[int, str] = {}
    for h in histories:
        for e in h.events:
            t = e.event_time.ToDatetime(UTC)
            kind = e.event_type
            if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED and "started" not in marks:
                marks["started"] = t
            elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
                stage = _stage_of(e)
                if stage is not None:
                    marks.setdefault(stage, t)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                updates.append(t)
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                activities[e.event_id] = e.activity_task_scheduled_event_attributes.activity_type.name
            elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                name = activities.get(e.activity_task_completed_event_attributes.scheduled_event_id)
                if name == "seal_and_deliver":
                    marks.setdefault("delivered", t)
            elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
                marks["completed"] = t
    out = {}

    def span(name: str, a: datetime | None, b: datetime | None) -> None:
        if a is not None and b is not None:
            out[name] = (b - a).total_seconds()

    span("submit_to_consent_awaited", marks.get("started"), marks.get("consent"))
    if len(updates) >= 3:
        span("consent_to_manager_awaited", updates[0], marks.get("manager_review"))
        span("approval_to_delivered", updates[1], marks.get("delivered"))
        span("approval_to_receipt_awaited", updates[1], marks.get("receipt"))
        span("ack_to_retention", updates[2], marks.get("retention"))
        span("retention_to_deleted", marks.get("retention"), marks.get("completed"))
    span("submit_to_delivered", marks.get("started"), marks.get("delivered"))
    span("submit_to_review_awaited", marks.get("started"), marks.get("retrospective_review"))
    return out


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)

    def pct(p: float) -> float:
        k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
        return ordered[k]

    return {"n": len(ordered), "p50": pct(50), "p95": pct(95), "p99": pct(99), "mean": statistics.fmean(ordered)}


async def analyse(raw: Client, ids: list[str], sample: int) -> tuple[dict[str, Any], list[dict[str, float]]]:
    """History cost (mean over a sample) and stage times of each request in `ids`."""
    sem = asyncio.Semaphore(16)

    async def one(wf_id: str) -> list[WorkflowHistory]:
        async with sem:
            return await history_runs(raw, wf_id)

    histories = await asyncio.gather(*(one(i) for i in ids))
    costs = [history_cost(h) for h in histories[:sample]]
    cost = {"events": statistics.fmean(c["events"] for c in costs),
            "bytes": statistics.fmean(c["bytes"] for c in costs), "runs": costs[0]["runs"], "kinds": costs[0]["kinds"]}
    return cost, [stage_times(h) for h in histories]


def latency_table(times: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    names = dict.fromkeys(k for t in times for k in t)
    return {name: percentiles([t[name] for t in times if name in t]) for name in names}


async def emergencies(stack: Stack, n: int, concurrency: int) -> list[str]:
    """Emergency requests (share now, review later), submitted with `concurrency` in flight; each is
    then reviewed and acknowledged so that it runs on to deletion."""
    emergency = actors(stack)

    async def one() -> str:
        req = request("emergency-override", "emerg")
        await emergency.submit(req)
        await emergency.drive(req, SCRIPTS["emergency-override"])  # acknowledged, then reviewed
        await emergency.client.wait(req.request_id)
        return workflow_id(req.request_id)

    _, ids = await drive(n, concurrency, one)
    return ids
