"""The `safeshare` console script: the clients' commands plus the processes (dev, worker, demo)."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from clients import Settings
from clients._cli import app, command

from ._demo import run_demo
from ._dev import run_dev, run_standalone_worker
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


@app.command()
@command
async def demo() -> None:
    """Submit the example requests and drive each to its end state, printing what happens."""
    await run_demo(Settings.from_env())


def main() -> None:
    app()
