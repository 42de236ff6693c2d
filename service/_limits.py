"""What the door limits: the size of a body, and how often each principal may call."""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from ._problems import MEDIA_TYPE, DoorError, Problem

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGI = Callable[[Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]]


class BodyLimit:
    """Refuse a body over `limit` bytes with 413 before a handler reads it: by its Content-Length,
    or, sent in chunks, as soon as the chunks pass the limit."""

    def __init__(self, app: ASGI, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self._refuse(send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._refuse(send)

    async def _refuse(self, send: Callable[[Message], Awaitable[None]]) -> None:
        body = Problem(type="urn:safeshare:problem:too_large", title="Body too large", status=413,
                       detail=f"body: at most {self.limit} bytes expected").model_dump_json().encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class RateLimit:
    """A token bucket per principal: `per_minute` calls a minute, in bursts of as many. Each
    replica counts its own callers (a load balancer spreads them; its own limit caps the whole)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate, self.capacity, self.clock = per_minute / 60, float(per_minute), clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> None:
        now = self.clock()
        tokens, last = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            wait = math.ceil((1 - tokens) / self.rate)
            raise DoorError(429, "rate_limited", "Too many calls", f"calls: at most {int(self.capacity)} a minute "
                            "expected; try again later", headers={"Retry-After": str(wait)})
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 100_000:  # callers come and go: forget the oldest
            for stale in list(self._buckets)[:50_000]:
                del self._buckets[stale]
