"""A separate process appending to the audit chain: `python -m tests.appender URL KEY_FILE NAME COUNT`.

It opens its own Store (its own engine and connection pool), says `ready`, waits for `go` on
stdin so that every appender starts at once, appends COUNT steps, and says `done`.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path

import crypto
from store import Store


async def main(url: str, key_file: str, name: str, count: int) -> None:
    store = await Store.open(url, crypto.new_key(), audit_key=crypto.SigningKey.load(Path(key_file)),
                             checkpoint_every=7, upgrade=False)
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    for i in range(count):
        now = datetime.now(UTC)
        await store.record_step(request_id=f"{name}-{i}", step="00001-appended", event="appended",
                                actor=name, at=now, data={"i": i}, note=None, notices=[], now=now)
    await store.close()
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
