"""Waiting on something another process does: look, and look again, until it holds or time is up.

What is awaited here has no event to wait on (a workflow's state seen through a query, a stage
the server holds, a count in visibility, a metrics page), so it is looked at: soon at first, less
often while nothing changes, and a deadline ends it with a message saying what was last seen.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class NotReached(TimeoutError):
    """A condition did not hold by its deadline; the message says what was awaited and last seen."""


@dataclass(frozen=True)
class Pace:
    """How often to look: `first` seconds after a change, growing half as much again with each
    look that sees nothing new, up to `most`. With `rng`, each pause is jittered (0.5-1.5 times)
    so that many waiters do not look in step."""

    first: float = 0.02
    most: float = 0.5
    rng: random.Random | None = None

    def pauses(self) -> Callable[[bool], float]:
        pause = self.first

        def after(changed: bool) -> float:
            nonlocal pause
            pause = self.first if changed else min(pause * 1.5, self.most)
            return pause * self.rng.uniform(0.5, 1.5) if self.rng is not None else pause

        return after


async def eventually(
    what: str,
    look: Callable[[], Awaitable[T]],
    holds: Callable[[T], bool] = bool,
    *,
    timeout: float = 30,
    pace: Pace = Pace(),
    tolerate: tuple[type[Exception], ...] = (),
) -> T:
    """The first value `look()` gives that `holds`; after `timeout` seconds, NotReached naming
    `what` and the last value seen. An exception of a `tolerate`d kind counts as a look that saw
    it (a request not started yet, a server restarting), not as a failure."""
    seen: object = "nothing yet"
    pause = pace.pauses()
    loop = asyncio.get_running_loop()
    asked = loop.time()
    try:
        async with asyncio.timeout(timeout) as scope:
            while True:
                asked = loop.time()
                try:
                    value = await look()
                except tolerate as err:
                    now: object = f"{type(err).__name__}: {err}"[:300]
                else:
                    if holds(value):
                        return value
                    now = value
                changed, seen, asked = now != seen, now, -1.0
                await asyncio.sleep(pause(changed))
    except TimeoutError:
        if not scope.expired():
            raise
        waiting = f" (the last look unanswered for {loop.time() - asked:.1f} s)" if asked >= 0 else ""
        raise NotReached(f"{what}: not within {timeout:g} s; last seen: {seen}{waiting}") from None
