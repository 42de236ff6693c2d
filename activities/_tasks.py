"""A coroutine run beside a block of work: started on entry, cancelled and awaited on exit."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any


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
