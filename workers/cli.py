"""The `safeshare` console script: the clients' commands plus the processes (dev, worker, demo)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from typing import Annotated

import typer

from clients import Settings
from clients._cli import PIPE_CLOSED, app, command

from ._demo import run_demo
from ._dev import run_codec_server, run_dev, run_service, run_standalone_worker
from ._logging import configure_logging


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = 8233,
) -> None:
    """Start the whole stack in the foreground: Temporal dev server with its UI, and a worker."""
    configure_logging()
    asyncio.run(run_dev(Settings.from_env(), port, ui_port))


@app.command()
def worker() -> None:
    """Run a worker against TEMPORAL_ADDRESS (scale out by running more)."""
    configure_logging()
    asyncio.run(run_standalone_worker(Settings.from_env()))


@app.command("codec-server")
def codec_server(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
) -> None:
    """Run the codec server alone (SAFESHARE_CODEC_PORT), for a UI in front of a Temporal cluster."""
    configure_logging()
    asyncio.run(run_codec_server(Settings.from_env(), host))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int | None, typer.Option(help="Port (default: SAFESHARE_SERVICE_PORT, 8235)")] = None,
) -> None:
    """Run the Safeshare service, the HTTP API every actor uses (run several behind a load balancer)."""
    configure_logging()
    settings = Settings.from_env()
    asyncio.run(run_service(settings, host, port or settings.service_port))


@app.command()
@command
async def demo() -> None:
    """Submit the example requests and drive each to its end state, printing what happens."""
    await run_demo(Settings.from_env())


def main() -> None:
    try:
        app()
        code: int | str | None = 0
    except SystemExit as exit_:
        code = exit_.code
    except Exception as e:  # the last line of defence, behind clients._cli's mapping
        # One line and no traceback: the message and the frames' values may hold personal data.
        sys.stderr.write(f"error: internal error ({type(e).__name__}); nothing more was done\n")
        code = 1
    # Leave without interpreter finalisation: the Temporal client's native (Rust) threads can
    # still touch the interpreter while it is torn down, and then the process aborts (SIGABRT,
    # "PyGILState_Release ... finalizing") instead of returning the command's exit code.
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
    exit_code = code if isinstance(code, int) else (0 if code is None else 1)
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # what was left in the buffer: its reader went away (`safeshare schema | head -c1`)
        exit_code = exit_code or PIPE_CLOSED
    with contextlib.suppress(BrokenPipeError):
        sys.stderr.flush()
    os._exit(exit_code)
