"""The audit chain's rules: how an entry is hashed, how a checkpoint is signed, how both are verified.

Each entry's hash is SHA-256 over the canonical JSON of the entry itself, its sequence number and
its predecessor's hash, so altering, removing, inserting or reordering an entry breaks the chain
from that entry on. A checkpoint is the deployment's Ed25519 signature over (seq, hash, at) of
the chain head at that moment: whoever rewrites the whole chain cannot re-sign the checkpoints.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import crypto

from ._rows import AuditEntry, ChainHead, Checkpoint

GENESIS = "0" * 64


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def entry_hash(
    *, seq: int, request_id: str, step: str, event: str, actor: str, at: datetime,
    data: Mapping[str, Any], prev_hash: str,
) -> str:
    return hashlib.sha256(canonical_json({
        "seq": seq, "request_id": request_id, "step": step, "event": event, "actor": actor,
        "at": _iso(at), "data": dict(data), "prev_hash": prev_hash,
    })).hexdigest()


def row_hash(row: AuditEntry) -> str:
    """The hash an audit row should carry, recomputed from what it says."""
    return entry_hash(
        seq=row.seq, request_id=row.request_id, step=row.step, event=row.event,
        actor=row.actor, at=row.at, data=json.loads(row.data), prev_hash=row.prev_hash,
    )


def checkpoint_message(seq: int, head_hash: str, at: datetime) -> bytes:
    return canonical_json({"kind": "safeshare-audit-checkpoint-v1", "seq": seq, "hash": head_hash, "at": _iso(at)})


@dataclass(frozen=True)
class AuditReport:
    """What `safeshare audit verify` says: no names, no content, only positions and hashes."""

    entries: int
    checkpoints: int
    head_seq: int
    first_bad_seq: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_chain(
    entries: Iterable[AuditEntry],
    checkpoints: Iterable[Checkpoint],
    head: ChainHead | None,
    public_key_b64: str | None,
) -> AuditReport:
    """Walk the chain in seq order; report the first entry that breaks it, then the checkpoints."""
    problems: list[str] = []
    first_bad: int | None = None
    hashes: dict[int, str] = {}
    expected_seq, prev = 1, GENESIS

    def bad(seq: int, problem: str) -> None:
        nonlocal first_bad
        if first_bad is None:
            first_bad = seq
            problems.append(problem)

    count = 0
    for row in entries:
        count += 1
        seq = row.seq
        hashes[seq] = row.hash
        if first_bad is None:
            if seq != expected_seq:
                bad(min(seq, expected_seq),
                    f"entry {expected_seq}: missing (next entry is {seq}): removed or reordered")
            elif row.prev_hash != prev:
                bad(seq, f"entry {seq}: does not follow entry {seq - 1}: removed, inserted or reordered")
            elif row_hash(row) != row.hash:
                bad(seq, f"entry {seq}: content does not match its hash: altered")
        expected_seq, prev = seq + 1, row.hash
    last_seq = expected_seq - 1
    if head is not None and first_bad is None and (head.seq != last_seq or head.hash != prev):
        bad(last_seq + 1, f"chain head is entry {head.seq} but the log ends at entry {last_seq}: "
                          "entries removed from the end")

    n_checkpoints = 0
    for cp in checkpoints:
        n_checkpoints += 1
        seq = cp.seq
        if public_key_b64 is None:
            problems.append(f"checkpoint at entry {seq}: no public key to verify it with")
            continue
        try:
            crypto.verify(public_key_b64, cp.signature, checkpoint_message(seq, cp.hash, cp.at))
        except crypto.CryptoError:
            problems.append(f"checkpoint at entry {seq}: signature does not verify")
            first_bad = seq if first_bad is None else min(first_bad, seq)
            continue
        if hashes.get(seq) != cp.hash:
            problems.append(f"checkpoint at entry {seq}: signed hash differs from the log's: chain rewritten")
            first_bad = seq if first_bad is None else min(first_bad, seq)
    return AuditReport(entries=count, checkpoints=n_checkpoints, head_seq=last_seq,
                       first_bad_seq=first_bad, problems=problems)
