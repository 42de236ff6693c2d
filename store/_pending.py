"""Audited steps the store could not take yet, kept on disk until it can.

What happens outside any workflow (a refused action, which by design leaves nothing in Temporal's
history) has no activity to retry it: if the store is down when it happens, an in-memory retry
dies with the process. Each such step is written here first, one file apiece (atomically, owner
only), and removed once the store holds it; whoever keeps the folder appends what is left when it
next can, at the latest when it starts again. The step's (request, step) key makes an append that
is repeated after a crash a no-op.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from ._rows import AuditStep
from ._store import Store


class PendingSteps:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def keep(self, request_id: str, step: AuditStep) -> None:
        """Write the step down (before the store is tried); no notes or notifications: none need them."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        body = json.dumps({"request_id": request_id, "step": step.step, "event": step.event, "actor": step.actor,
                           "at": step.at.isoformat(), "data": step.data}).encode()
        # Named by its key: the same step kept twice is one file.
        name = hashlib.sha256(f"{request_id}\0{step.step}".encode()).hexdigest()[:32]
        tmp = self.folder / f".{name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, body)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(self.folder / f"{name}.json")

    def count(self) -> int:
        return len(list(self.folder.glob("*.json"))) if self.folder.is_dir() else 0

    async def flush(self, store: Store, now: datetime) -> int:
        """Append every kept step to the store, oldest first, removing each once stored; returns how
        many. A store error propagates, and what is not stored stays kept."""
        if not self.folder.is_dir():
            return 0
        kept = sorted(self.folder.glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
        for path in kept:
            entry: dict[str, Any] = json.loads(path.read_bytes())
            at = datetime.fromisoformat(entry["at"])
            step = AuditStep(step=entry["step"], event=entry["event"], actor=entry["actor"], at=at,
                             data=entry["data"], note=None, notices=[])
            await store.record_steps(entry["request_id"], [step], now=now)
            path.unlink()
        return len(kept)
