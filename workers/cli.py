"""The `safeshare` console script: the clients' commands plus the processes (dev, worker, demo)."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Annotated

import typer

from clients import Settings, SettingsError
from clients._cli import app, command

from ._demo import run_demo
from ._dev import run_codec_server, run_dev, run_standalone_worker
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
@command
async def demo() -> None:
    """Submit the example requests and drive each to its end state, printing what happens."""
    await run_demo(Settings.from_env())


def main() -> None:
    try:
        app()
        code: int | str | None = 0
    except SettingsError as e:  # raised outside a client command's own error handling
        sys.stderr.write(f"error: {e}\n")
        code = 2
    except SystemExit as exit_:
        code = exit_.code
    # Leave without interpreter finalisation: the Temporal client's native (Rust) threads can
    # still touch the interpreter while it is torn down, and then the process aborts (SIGABRT,
    # "PyGILState_Release ... finalizing") instead of returning the command's exit code.
    if isinstance(code, str):
        sys.stderr.write(code + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code if isinstance(code, int) else (0 if code is None else 1))
