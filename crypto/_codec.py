"""The payload codec: every payload Temporal stores is AES-256-GCM ciphertext.

Two kinds of key protect payloads:

- A **history key per request**, random, kept wrapped in the key vault. Every payload of a share
  request's workflow (its input, activity arguments and results, updates, failures) is encrypted
  under it, so destroying it at retention expiry makes the request's Temporal history unreadable
  wherever copies of it live: the server's database, its backups, an exported history.
- The deployment's **key ring**, for payloads that belong to no request (and for the tombstone run
  that records a deletion once the request's key is gone). The ring also wraps the history keys;
  `safeshare keys rotate` adds a new current key and re-wraps them, old keys keep decrypting.

Payload metadata names the key (`req:<workflow id>` or `ring:<key id>`), never anything else, so
the codec server can decode without knowing which workflow a payload came from.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import os
import secrets
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
    SerializationContext,
    WithSerializationContext,
    WorkflowSerializationContext,
)

import database
from schemas import WORKFLOW_ID_PREFIX

from ._aead import decrypt, encrypt, new_key
from ._errors import CryptoError
from ._keys import b64, read_secret, unb64, write_secret

ENCODING = b"binary/encrypted"
KEY_ID = "safeshare-key"
UNREADABLE = "payload cannot be decrypted"


class KeyRing:
    """The deployment's codec keys, in one 0600 JSON file: the current key id and every key."""

    def __init__(self, path: Path, current: str, keys: dict[str, bytes]) -> None:
        self.path, self.current, self._keys = path, current, keys

    @classmethod
    def create(cls, path: Path) -> KeyRing:
        ring = cls(path, "k1", {"k1": new_key()})
        ring._save()
        return ring

    @classmethod
    def load(cls, path: Path) -> KeyRing:
        current, keys = cls._read(path)
        return cls(path, current, keys)

    @staticmethod
    def _read(path: Path) -> tuple[str, dict[str, bytes]]:
        try:
            doc = json.loads(read_secret(path))
            keys = {kid: unb64(k) for kid, k in doc["keys"].items()}
            if doc["current"] not in keys:
                raise CryptoError
            return doc["current"], keys
        except (ValueError, KeyError, TypeError) as err:
            raise CryptoError(f"not a key ring file: {path.name}") from err

    def _save(self) -> None:
        doc = {"current": self.current, "keys": {kid: b64(k) for kid, k in self._keys.items()}}
        write_secret(self.path, json.dumps(doc, indent=2).encode())

    def rotate(self) -> str:
        kid = f"k{len(self._keys) + 1}"
        self._keys[kid] = new_key()
        self.current = kid
        self._save()
        return kid

    def key(self, kid: str) -> bytes:
        if kid not in self._keys:
            # Another process may have rotated: re-read the file once before giving up.
            self.current, self._keys = self._read(self.path)
        try:
            return self._keys[kid]
        except KeyError:
            raise CryptoError(UNREADABLE) from None

    @property
    def kids(self) -> list[str]:
        return list(self._keys)


_metadata = sa.MetaData()
history_keys = sa.Table(
    "history_keys",
    _metadata,
    sa.Column("workflow_id", sa.String(200), primary_key=True),
    sa.Column("ring_kid", sa.String(16), nullable=False),
    sa.Column("wrapped_key", sa.LargeBinary, nullable=True),
    sa.Column("state", sa.String(10), nullable=False),  # active | retiring | destroyed
    sa.Column("created_at", sa.String(40), nullable=False),
    sa.Column("destroyed_at", sa.String(40), nullable=True),
)


# How long a process may use a history key (and its state) it read from the vault without
# reading it again. Every payload is encoded or decoded under its request's key, so without this
# each one cost a vault query: a quarter of the worker's busy time (docs/PERFORMANCE.md). A
# workflow task's or an activity's payloads come within it; each deletion step waits it out.
KEY_CACHE_SECONDS = 0.25


@dataclasses.dataclass(frozen=True)
class _Cached:
    state: str
    key: bytes | None
    until: float  # time.monotonic() after which the entry is read again


# One cache per vault per process, shared by every HistoryKeys over it (a worker has two: the
# codec's and the activities'), so that a retire or destroy here is seen here at once.
_CACHES: dict[str, dict[str, _Cached]] = {}
_CACHE_PURGE_AT = 4096


class HistoryKeys:
    """The key vault: one random key per request, wrapped under the ring, destroyable.

    In a production deployment this role belongs to a KMS (docs/SECURITY.md); the interface is
    what the codec needs from one: create, unwrap, retire, destroy.

    Keys read are kept for `cache_seconds`. Retiring or destroying a key returns only after
    that long, so that when it returns no process, this one or another, still holds the key as it
    was: a retired key encrypts nothing new, and a destroyed key decrypts nothing, anywhere.
    """

    def __init__(self, engine: AsyncEngine, ring: KeyRing, cache_seconds: float = KEY_CACHE_SECONDS) -> None:
        self._engine, self.ring, self.cache_seconds = engine, ring, cache_seconds
        self._writer = database.writer(engine)
        self._cache = _CACHES.setdefault(engine.url.render_as_string(), {})

    @classmethod
    async def open(cls, url: str, ring: KeyRing, cache_seconds: float | None = None) -> HistoryKeys:
        if cache_seconds is None:
            cache_seconds = float(os.environ.get("SAFESHARE_KEY_CACHE_SECONDS", KEY_CACHE_SECONDS))
        engine = database.make_engine(url)
        async with database.writer(engine).begin() as conn:
            await conn.run_sync(_metadata.create_all)
        return cls(engine, ring, cache_seconds)

    def _cached(self, workflow_id: str) -> _Cached | None:
        hit = self._cache.get(workflow_id)
        if hit is None or hit.until <= time.monotonic():
            return None
        return hit

    def _remember(self, workflow_id: str, state: str, key: bytes | None, read_at: float) -> None:
        # Counted from before the read: the entry is never older than its lifetime says.
        if self.cache_seconds <= 0:
            return
        if len(self._cache) >= _CACHE_PURGE_AT:
            now = time.monotonic()
            for wf_id in [w for w, c in self._cache.items() if c.until <= now]:
                del self._cache[wf_id]
        self._cache[workflow_id] = _Cached(state, key, read_at + self.cache_seconds)

    async def close(self) -> None:
        await self._engine.dispose()

    def _unwrap(self, workflow_id: str, kid: str, wrapped: bytes) -> bytes:
        return decrypt(self.ring.key(kid), wrapped, _aad(workflow_id))

    async def _load(self, workflow_id: str) -> _Cached | None:
        """The key and its state, from the cache or else the vault (then cached); None: no key."""
        hit = self._cached(workflow_id)
        if hit is not None:
            return hit
        read_at = time.monotonic()
        row = await self._row(workflow_id)
        if row is None:
            return None
        key = self._unwrap(workflow_id, row.ring_kid, row.wrapped_key) if row.wrapped_key is not None else None
        self._remember(workflow_id, row.state, key, read_at)
        return _Cached(row.state, key, 0)

    async def key_for_encoding(self, workflow_id: str) -> bytes | None:
        """The request's key, created on first use; None once it is retiring or destroyed."""
        found = await self._load(workflow_id)
        if found is None:
            read_at, key = time.monotonic(), new_key()
            try:
                async with self._writer.begin() as conn:
                    await conn.execute(history_keys.insert().values(
                        workflow_id=workflow_id, ring_kid=self.ring.current, state="active",
                        wrapped_key=encrypt(self.ring.key(self.ring.current), key, _aad(workflow_id)),
                        created_at=datetime.now(UTC).isoformat(),
                    ))
            except IntegrityError:  # created concurrently by another process: use theirs
                found = await self._load(workflow_id)
                assert found is not None
            else:
                self._remember(workflow_id, "active", key, read_at)
                return key
        return found.key if found.state == "active" else None

    async def key_for_decoding(self, workflow_id: str) -> bytes:
        found = await self._load(workflow_id)
        if found is None or found.key is None:
            raise CryptoError(UNREADABLE)
        return found.key

    async def retire(self, workflow_id: str) -> None:
        """New payloads of this request go under the ring from now on; old ones still decrypt."""
        await self._set_state(workflow_id, "retiring", history_keys.c.state == "active")

    async def destroy(self, workflow_id: str) -> None:
        """Crypto-shred the request's Temporal history: the key is gone, for good."""
        await self._set_state(workflow_id, "destroyed", history_keys.c.state != "destroyed",
                              wrapped_key=None, destroyed_at=datetime.now(UTC).isoformat())

    async def state(self, workflow_id: str) -> str | None:
        row = await self._row(workflow_id)
        return row.state if row is not None else None

    async def rewrap(self) -> int:
        """Wrap every live history key under the ring's current key; returns how many moved."""
        moved = 0
        async with self._writer.begin() as conn:
            rows = (await conn.execute(sa.select(history_keys).where(
                history_keys.c.wrapped_key.is_not(None), history_keys.c.ring_kid != self.ring.current,
            ))).all()
            for row in rows:
                key = self._unwrap(row.workflow_id, row.ring_kid, row.wrapped_key)
                await conn.execute(history_keys.update().where(
                    history_keys.c.workflow_id == row.workflow_id
                ).values(ring_kid=self.ring.current,
                         wrapped_key=encrypt(self.ring.key(self.ring.current), key, _aad(row.workflow_id))))
                moved += 1
        return moved

    async def _row(self, workflow_id: str) -> Any:
        async with self._engine.connect() as conn:
            return (await conn.execute(
                sa.select(history_keys).where(history_keys.c.workflow_id == workflow_id)
            )).first()

    async def _set_state(self, workflow_id: str, state: str, guard: Any, **values: Any) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(history_keys.update().where(
                history_keys.c.workflow_id == workflow_id, guard).values(state=state, **values))
        self._cache.pop(workflow_id, None)
        if self.cache_seconds > 0:
            # Other processes may hold the key as it was for up to cache_seconds: outwait them.
            await asyncio.sleep(self.cache_seconds)


def _aad(workflow_id: str) -> bytes:
    # A wrapped key opens only as the key of the workflow it was made for.
    return b"history-key|" + workflow_id.encode()


class EncryptionCodec(PayloadCodec, WithSerializationContext):
    """AES-256-GCM over each serialized payload; the key chosen by the workflow the payload is for."""

    def __init__(self, vault: HistoryKeys, workflow_id: str | None = None) -> None:
        self.vault, self.workflow_id = vault, workflow_id

    def with_context(self, context: SerializationContext) -> EncryptionCodec:
        wf_id = None
        if isinstance(context, WorkflowSerializationContext | ActivitySerializationContext):
            wf_id = context.workflow_id
        return EncryptionCodec(self.vault, wf_id)

    async def _encoding_key(self) -> tuple[str, bytes]:
        wf_id = self.workflow_id
        if wf_id is not None and wf_id.startswith(WORKFLOW_ID_PREFIX):  # a share request: its own key
            key = await self.vault.key_for_encoding(wf_id)
            if key is not None:
                return f"req:{wf_id}", key
        ring = self.vault.ring
        return f"ring:{ring.current}", ring.key(ring.current)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not payloads:
            return []
        key_id, key = await self._encoding_key()
        return [
            Payload(
                metadata={"encoding": ENCODING, KEY_ID: key_id.encode()},
                data=encrypt(key, p.SerializeToString(), key_id.encode()),
            )
            for p in payloads
        ]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for p in payloads:
            if p.metadata.get("encoding") != ENCODING:
                out.append(p)  # never encrypted (e.g. written before the codec existed)
                continue
            out.append(await self._decrypt(p))
        return out

    async def _decrypt(self, payload: Payload) -> Payload:
        # Whatever fails (unknown key, destroyed key, altered bytes), the caller learns one thing.
        try:
            key_id = payload.metadata[KEY_ID].decode()
            kind, _, name = key_id.partition(":")
            if kind == "req":
                key = await self.vault.key_for_decoding(name)
            elif kind == "ring":
                key = self.vault.ring.key(name)
            else:
                raise CryptoError(UNREADABLE)
            inner = Payload()
            inner.ParseFromString(decrypt(key, payload.data, key_id.encode()))
            return inner
        except Exception:
            raise CryptoError(UNREADABLE) from None


@dataclasses.dataclass(frozen=True)
class _ContextualDataConverter(DataConverter):
    """A DataConverter whose `with_context` clones without re-running `__post_init__`.

    The SDK asks for a converter in a payload's context for every payload sequence a worker
    encodes or decodes (each command's and each activation job's). The codec always takes the
    context (it picks the request's key by workflow id), so the SDK's `with_context` always clones,
    by `dataclasses.replace`, whose `__post_init__` builds a new Pydantic payload converter and
    failure converter only for the clone to overwrite them: about a tenth of the share worker's
    workflow-task CPU (docs/PERFORMANCE.md). Cloning by `copy.copy` keeps the same components.
    """

    def with_context(self, context: SerializationContext) -> Self:
        converter, codec, failures, storage = (
            c.with_context(context) if isinstance(c, WithSerializationContext) else c
            for c in (self.payload_converter, self.payload_codec, self.failure_converter, self.external_storage)
        )
        if (converter is self.payload_converter and codec is self.payload_codec
                and failures is self.failure_converter and storage is self.external_storage):
            return self
        cloned = copy.copy(self)
        for name, value in (("payload_converter", converter), ("payload_codec", codec),
                            ("failure_converter", failures), ("external_storage", storage)):
            object.__setattr__(cloned, name, value)
        return cloned


def data_converter(codec: EncryptionCodec) -> DataConverter:
    """Pydantic payloads, encrypted; failure messages and stack traces go through the codec too."""
    return _ContextualDataConverter(
        payload_converter_class=pydantic_data_converter.payload_converter_class,
        payload_codec=codec,
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )


def new_token() -> str:
    return secrets.token_urlsafe(32)

