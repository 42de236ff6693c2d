"""Crypto cost, each operation against the bare primitive it is built on, alternated in rounds."""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import WorkflowSerializationContext

import crypto
from clients import sign
from schemas import DecisionAction, EventInput

SIZES = {"10KB": 10 * 1024, "1MB": 2**20, "10MB": 10 * 2**20}


def _time(fn: Callable[[], Any], iterations: int) -> float:
    start = time.perf_counter()
    for _ in range(iterations):
        fn()
    return (time.perf_counter() - start) / iterations


def compare(subject: Callable[[], Any], baseline: Callable[[], Any], iterations: int, rounds: int) -> dict[str, float]:
    """Median seconds per operation of each, from alternating rounds; and their ratio."""
    subject(), baseline()  # warm
    s, b = [], []
    for _ in range(rounds):
        s.append(_time(subject, iterations))
        b.append(_time(baseline, iterations))
    ms, mb = statistics.median(s), statistics.median(b)
    return {"subject_ms": ms * 1e3, "baseline_ms": mb * 1e3, "ratio": ms / mb}


async def acompare(subject: Callable[[], Awaitable[Any]], baseline: Callable[[], Any], iterations: int,
                   rounds: int) -> dict[str, float]:
    await subject()
    s, b = [], []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(iterations):
            await subject()
        s.append((time.perf_counter() - start) / iterations)
        b.append(_time(baseline, iterations))
    ms, mb = statistics.median(s), statistics.median(b)
    return {"subject_ms": ms * 1e3, "baseline_ms": mb * 1e3, "ratio": ms / mb}


def bundles(scale: float) -> dict[str, dict[str, float]]:
    """Seal + open (HPKE to the recipient, Ed25519 by the sender, the JSON envelope) against raw
    AES-256-GCM encrypt + decrypt of the same bytes."""
    recipient = crypto.AgencyKeys.generate("X25519")
    sender = crypto.AgencyKeys.generate("X25519")
    header = crypto.BundleHeader("bench-1", "sender", "recipient", "X25519")
    key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)
    out = {}
    for name, size in SIZES.items():
        data = os.urandom(size)
        iterations = max(1, int({"10KB": 400, "1MB": 20, "10MB": 3}[name] * max(scale, 0.25)))

        def sealed_round_trip(data: bytes = data) -> None:
            bundle = crypto.seal(data, header, recipient.hpke_public_b64, sender.signing)
            crypto.open_bundle(bundle, recipient="recipient", keys=recipient,
                               sender_public_b64=sender.signing_public_b64)

        def raw(data: bytes = data) -> None:
            aead = AESGCM(key)
            aead.decrypt(nonce, aead.encrypt(nonce, data, None), None)

        out[name] = compare(sealed_round_trip, raw, iterations, rounds=5)
    return out


async def codec(scale: float, cache_seconds: float | None = None) -> dict[str, Any]:
    """Codec encode + decode of one typical payload (an audited step's input) under its request's
    history key, against raw AES-256-GCM of the same serialized payload. `cache_seconds=0` is the
    codec as it was before its key cache (a vault query per payload)."""
    with tempfile.TemporaryDirectory() as tmp:
        ring = crypto.KeyRing.create(Path(tmp) / "ring.json")
        vault = await crypto.HistoryKeys.open(f"sqlite+aiosqlite:///{tmp}/vault.db", ring, cache_seconds)
        try:
            c = crypto.EncryptionCodec(vault).with_context(
                WorkflowSerializationContext(namespace="default", workflow_id="share-bench-1"))
            payload = pydantic_data_converter.payload_converter.to_payloads([EventInput(
                request_id="bench-1", step="00007-manager_asked", event="manager_asked", actor="system",
                at=datetime.now(UTC), data={"tier": 1}, note=None, notices=[])])[0]
            raw_bytes = payload.SerializeToString()
            key, nonce = AESGCM.generate_key(bit_length=256), os.urandom(12)

            async def round_trip() -> None:
                await c.decode(await c.encode([payload]))

            def raw() -> None:
                aead = AESGCM(key)
                aead.decrypt(nonce, aead.encrypt(nonce, raw_bytes, None), None)

            result = await acompare(round_trip, raw, max(20, int(1000 * scale)), rounds=5)
            result["payload_bytes"] = len(raw_bytes)
            return result
        finally:
            await vault.close()


def signatures(scale: float) -> dict[str, float]:
    """A manager's decision signed (client) and verified (the workflow's validator), against raw
    Ed25519 sign + verify of the same message."""
    key = crypto.SigningKey.generate()
    public = key.public_b64
    action = DecisionAction(decision="approve", manager="np-dsl", reason="Proportionate.")
    digest = "0" * 64
    message = sign(action, "bench-1", digest, key).signed_message("bench-1", digest)
    raw_key = Ed25519PrivateKey.generate()
    raw_public = raw_key.public_key()

    def decision() -> None:
        signed = sign(action, "bench-1", digest, key)
        assert crypto.signed_by(signed, "bench-1", digest, public)

    def raw() -> None:
        raw_public.verify(raw_key.sign(message), message)

    return compare(decision, raw, max(50, int(2000 * scale)), rounds=5)


async def crypto_costs(scale: float) -> dict[str, Any]:
    return {"bundle_seal_open": bundles(scale), "codec_round_trip": await codec(scale),
            "codec_round_trip_uncached": await codec(scale, cache_seconds=0),
            "decision_sign_verify": signatures(scale)}
