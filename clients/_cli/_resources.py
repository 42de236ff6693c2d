"""What a command needs of the deployment, each an async context manager (`async with
resources.store(settings) as store:`): what one opens is closed when the block ends, however it
ends, so no command opens or closes anything itself. Commands call them through this module, so
a test replaces one here for every command."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager

import crypto
from clients._client import SafeshareClient, connect, open_store, open_vault, opened
from clients._files import read_directory
from clients._settings import Settings
from store import Store


def store(settings: Settings, *, audit_key: crypto.SigningKey | None = None) -> AbstractAsyncContextManager[Store]:
    """The store; with the deployment's audit key, one that can sign checkpoints."""
    return opened(open_store(settings, audit_key=audit_key))


def vault(settings: Settings, ring: crypto.KeyRing | None = None) -> AbstractAsyncContextManager[crypto.HistoryKeys]:
    """The history-key vault, under the deployment's key ring or the one given."""
    return opened(open_vault(settings, ring))


@contextlib.asynccontextmanager
async def client(settings: Settings) -> AsyncIterator[SafeshareClient]:
    """The Temporal client over the payload codec, with the directory it checks requests against."""
    directory = read_directory(settings.directory_file)
    async with vault(settings) as keys:
        temporal = await connect(settings, crypto.EncryptionCodec(keys))
        yield SafeshareClient(temporal, directory, settings.task_queue)
