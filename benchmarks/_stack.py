"""The stack under measurement: the Temporal dev server persisting to a file (as `make run` does),
the Safeshare worker and the baseline worker, each in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion

import crypto
from clients import SafeshareClient, Settings, Unavailable, connect, open_codec, read_directory
from workers import end_retention_at_record, ensure_demo_home
from workers._dev import dev_server_args
from workers._worker import make_current

BUILD_ID = "bench"


def versioned(name: str) -> dict[str, str]:
    """A worker's Worker Deployment Version (its own deployment per worker), as environment."""
    return {"SAFESHARE_BUILD_ID": BUILD_ID, "SAFESHARE_DEPLOYMENT": f"{name}-bench"}

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare_home(home: Path) -> Settings:
    """A demo home whose retention has passed for any child over one: deletion follows the record."""
    settings = Settings.from_env({"SAFESHARE_HOME": str(home)})
    ensure_demo_home(settings)
    end_retention_at_record(settings)
    return settings


def retention_passed_dob(today: date) -> date:
    return today.replace(year=today.year - 2)


def rss_bytes(pid: int) -> tuple[int, int]:
    """Resident memory now and at its peak (VmRSS, VmHWM) of one process."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (/proc/<pid>/stat), robust to a busy machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def db_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())


@dataclass
class Stack:
    home: Path
    settings: Settings = field(init=False)
    port: int = field(default_factory=free_port)
    server: asyncio.subprocess.Process | None = None
    workers: dict[str, asyncio.subprocess.Process] = field(default_factory=dict)
    client: Client | None = None
    raw: Client | None = None  # no codec: what the server holds
    share: SafeshareClient | None = None
    codec: crypto.EncryptionCodec | None = None

    def __post_init__(self) -> None:
        self.settings = prepare_home(self.home)
        self.settings = Settings.from_env({"SAFESHARE_HOME": str(self.home),
                                           "TEMPORAL_ADDRESS": f"127.0.0.1:{self.port}"})

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "SAFESHARE_HOME": str(self.home), "TEMPORAL_ADDRESS": self.settings.temporal_address,
                "PYTHONPATH": str(ROOT)}

    async def start_server(self) -> None:
        args = dev_server_args(self.settings, self.port, free_port())
        log = open(self.home / "temporal.log", "ab")  # noqa: ASYNC230, SIM115 - handed to the child
        self.server = await asyncio.create_subprocess_exec(*args, stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.codec = await open_codec(self.settings)
        async with asyncio.timeout(90):
            while True:
                try:
                    self.client = await connect(self.settings, self.codec)
                    break
                except Unavailable:
                    await asyncio.sleep(0.25)
        self.raw = await Client.connect(self.settings.temporal_address)
        self.share = SafeshareClient(self.client, read_directory(self.settings.directory_file), "bench-share")

    async def start_worker(self, name: str, argv: list[str], env: dict[str, str], profile: Path | None = None) -> int:
        if profile is not None:
            argv = [str(BIN / "py-spy"), "record", "--rate", "50", "--format", "raw", "-o", str(profile),
                    "--", *argv]
        log = open(self.home / f"{name}.log", "ab")  # noqa: ASYNC230, SIM115 - handed to the child
        proc = await asyncio.create_subprocess_exec(*argv, env={**self.env, **env}, stdout=asyncio.subprocess.PIPE,
                                                    stderr=log, cwd=ROOT, start_new_session=True)
        log.close()
        self.workers[name] = proc
        await self._ready(name, proc)
        return await self._python_pid(proc, profile is not None)

    async def make_current(self, name: str) -> None:
        """Make the worker's build its deployment's Current Version, as `make run` does."""
        assert self.raw is not None
        await make_current(self.raw, WorkerDeploymentVersion(deployment_name=f"{name}-bench", build_id=BUILD_ID))

    async def _ready(self, name: str, proc: asyncio.subprocess.Process) -> None:
        # The share worker logs to stderr (its log file); it is ready when it polls, which we
        # learn by its log line; the baseline worker prints to stdout.
        async with asyncio.timeout(60):
            while True:
                text = (self.home / f"{name}.log").read_text(errors="replace")
                if "worker_started" in text:
                    return
                if proc.stdout is not None:
                    with contextlib.suppress(TimeoutError):
                        line = await asyncio.wait_for(proc.stdout.readline(), 0.2)
                        if b"worker_started" in line:
                            return
                if proc.returncode is not None:
                    raise RuntimeError(f"{name} worker exited: see {self.home / (name + '.log')}")
                await asyncio.sleep(0.1)

    async def _python_pid(self, proc: asyncio.subprocess.Process, profiled: bool) -> int:
        if not profiled:
            return proc.pid
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()  # noqa: ASYNC240
        return int(children[0])

    def share_worker_argv(self) -> list[str]:
        return [str(BIN / "safeshare"), "worker"]

    def baseline_worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks._baseline"]

    async def stop_worker(self, name: str) -> None:
        proc = self.workers.pop(name)
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGINT)  # the worker, and py-spy around it if profiled
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()

    async def stop(self) -> None:
        for name in list(self.workers):
            await self.stop_worker(name)
        if self.codec is not None:
            await self.codec.vault.close()
        if self.server is not None and self.server.returncode is None:
            self.server.terminate()
            try:
                await asyncio.wait_for(self.server.wait(), 30)
            except TimeoutError:
                self.server.kill()
                await self.server.wait()
