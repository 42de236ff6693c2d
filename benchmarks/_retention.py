"""Retention at scale: many requests parked in their retention wait, then all expiring together.

A real dev server has no clock to skip, and a retention date is a day (midnight UTC), so a date
cannot be made to fall a few minutes ahead. What the code does allow: a request whose retention has
already passed, but which is on legal hold, waits in the retention stage exactly as one whose date
is years ahead (the same loop, a durable timer of up to a year, the same state); releasing the
hold is its expiry. So each request is driven (declined, with a hold placed while the manager
decides) into the held retention wait; then every hold is released at once and we count the
deletions. Releasing costs one Update per request on top of the deletion; it is measured apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from clients import Refused
from schemas import HoldAction
from workers import DECLINE

from ._lifecycle import actors, drive, request
from ._stack import Stack, db_bytes, rss_bytes

COUNT_RUNNING = "WorkflowType = 'ShareRequest' AND ExecutionStatus = 'Running'"


async def _count(stack: Stack, query: str) -> int:
    assert stack.raw is not None
    return (await stack.raw.count_workflows(query)).count


async def _until_count(stack: Stack, query: str, target: int, timeout: float) -> float:
    """Seconds until the visibility count reaches the target (checked every 0.5 s)."""
    start = time.perf_counter()
    async with asyncio.timeout(timeout):
        while await _count(stack, query) != target:  # noqa: ASYNC110 - the server's count, polled
            await asyncio.sleep(0.5)
    return time.perf_counter() - start


async def retention(stack: Stack, n: int, concurrency: int, worker_pid: int, expire: bool = True) -> dict[str, Any]:
    share = stack.share
    assert share is not None
    school = actors(stack, every=0.25)
    rids: list[str] = []
    db = stack.settings.temporal_db
    db_before = db_bytes(db)
    rss_before, _ = rss_bytes(worker_pid)

    async def park() -> str:
        req = request("police-inbound-declined", "park")
        rid = req.request_id
        await school.submit(req)
        await school.drive(req, [DECLINE], "manager_review")
        await share.hold(rid, HoldAction(hold=True, reason="Benchmark: parked until released.", by="np-dpo"),
                         school.key("np-dpo"))
        await school.take(req, DECLINE)
        rids.append(rid)
        return rid

    # The worker's memory as requests park: bounded by the sticky cache, or growing with each one?
    curve: list[tuple[int, float]] = []

    async def sample() -> None:
        while True:
            curve.append((len(rids), round(rss_bytes(worker_pid)[0] / 2**20, 1)))
            await asyncio.sleep(5)

    sampler = asyncio.create_task(sample())
    start = time.perf_counter()
    await drive(n, concurrency, park)
    driven = time.perf_counter() - start
    parked_query = "WorkflowType = 'ShareRequest' AND ExecutionStatus = 'Running' AND ShareStage = 'retention'"
    await _until_count(stack, parked_query, n, timeout=600)
    park_seconds = time.perf_counter() - start
    await asyncio.sleep(5)  # let the worker settle (caches full, activities done) before measuring
    rss_parked, rss_peak = rss_bytes(worker_pid)
    db_parked = db_bytes(db)
    sampler.cancel()
    parked = {
        "parked": n, "concurrency": concurrency,
        "park_seconds": park_seconds, "park_driven_seconds": driven, "park_rate_per_s": n / park_seconds,
        "worker_rss_before_mb": rss_before / 2**20, "worker_rss_parked_mb": rss_parked / 2**20,
        "worker_rss_peak_mb": rss_peak / 2**20, "worker_rss_curve_mb": curve,
        "db_before_mb": db_before / 2**20, "db_parked_mb": db_parked / 2**20,
        "db_growth_per_request_kb": (db_parked - db_before) / n / 1024,
    }
    if not expire:
        return parked

    async def release(rid: str) -> None:
        with contextlib.suppress(Refused):  # already released (a retried call)
            await share.hold(rid, HoldAction(hold=False, reason="Benchmark: released.", by="np-dpo"),
                             school.key("np-dpo"))

    sem = asyncio.Semaphore(concurrency)

    async def bounded(rid: str) -> None:
        async with sem:
            await release(rid)

    start = time.perf_counter()
    await asyncio.gather(*(bounded(r) for r in rids))
    released = time.perf_counter() - start
    await _until_count(stack, COUNT_RUNNING, 0, timeout=1200)
    deleted = time.perf_counter() - start
    rss_after, rss_peak = rss_bytes(worker_pid)
    return parked | {
        "worker_rss_peak_mb": rss_peak / 2**20, "worker_rss_after_mb": rss_after / 2**20,
        "release_seconds": released, "delete_seconds": deleted, "deletions_per_s": n / deleted,
    }
