"""`safeshare serve`: the service on uvicorn, with what it holds of the deployment opened once."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import structlog
import uvicorn

import crypto
from clients import SafeshareClient, Settings, connect, open_store, open_vault, opened, read_directory

from ._app import create_app
from ._door import Door
from ._limits import RateLimit

log = structlog.get_logger("safeshare.service")


@contextlib.asynccontextmanager
async def deployment_door(settings: Settings) -> AsyncIterator[Door]:
    """The Temporal client over the payload codec, the store and the directory: the service is the
    only door that holds them. Nothing is kept between calls but the rate limiter's counts, so any
    number of replicas serve side by side."""
    directory = read_directory(settings.directory_file)
    audit_pub = settings.audit_public_key_file
    public_key = audit_pub.read_text().strip() if audit_pub.is_file() else None
    async with opened(open_vault(settings)) as vault, opened(open_store(settings)) as store:
        temporal = await connect(settings, crypto.EncryptionCodec(vault))
        client = SafeshareClient(temporal, directory, settings.task_queue)
        yield Door(client, store, directory, settings.service_audience, RateLimit(settings.service_rate_limit),
                   audit_public_key=public_key)


class _Server(uvicorn.Server):
    # The process's own signal handling stops the server (`should_exit`), so that in `safeshare
    # dev` it stops in order with the worker and the Temporal server.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(settings: Settings, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve until `stop` is set."""
    app = create_app(lambda: deployment_door(settings), settings.service_max_body)
    server = _Server(uvicorn.Config(app, host=host, port=port, access_log=False, log_config=None,
                                    lifespan="on", server_header=False))

    async def stopper() -> None:
        await stop.wait()
        server.should_exit = True

    stopping = asyncio.create_task(stopper())
    try:
        log.info("service_starting", url=f"http://{host}:{port}")
        await server.serve()
    finally:
        stopping.cancel()
    if not server.started:
        raise OSError(f"service: could not serve on {host}:{port} (port in use, or the deployment unreachable)")
