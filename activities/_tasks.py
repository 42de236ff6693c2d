"""What runs beside an activity's work, and the clock it reads."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from datetime import datetime, timedelta
from typing import Any

from temporalio import activity


@contextlib.asynccontextmanager
async def beside(coro: Coroutine[Any, Any, Any]) -> AsyncIterator[asyncio.Task]:
    """Heartbeats, a census, a refusal recorder, checkpoints: each lives as long as the block."""
    task = asyncio.create_task(coro)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def heartbeating(every: timedelta = timedelta(seconds=2)) -> AsyncIterator[None]:
    """Heartbeat while a send is in flight, so a worker that dies mid-send is noticed within the
    activity's heartbeat timeout rather than its (longer) start-to-close timeout."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every.total_seconds())

    async with beside(beat()):
        yield


def attempt_time() -> datetime:
    """The server's clock for this attempt: real time in production, skipped time in tests."""
    return activity.info().current_attempt_scheduled_time
