"""`safeshare audit verify`: one test per kind of tampering, on SQLite and PostgreSQL.

The rule protected: the audit log is tamper-evident (docs/DESIGN.md, security model). Altering,
removing, inserting or reordering an entry, cutting the end off, rewriting the chain, or forging
a checkpoint is reported at the first bad entry with a non-zero exit.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from typer.testing import CliRunner

import crypto
from clients import Settings
from clients._cli import AUDIT_BROKEN, app
from store import AuditEntry, ChainHead, Store, make_engine, upgrade_database, verify_chain
from store._audit import entry_hash

T0 = datetime(2026, 11, 21, 9, 0, tzinfo=UTC)
ENTRIES = 10  # checkpoints at 4 and 8


@dataclass
class Chain:
    settings: Settings
    url: str

    async def sql(self, *statements: str, **params: object) -> None:
        engine = make_engine(self.url)
        async with engine.begin() as conn:
            for statement in statements:
                await conn.execute(sa.text(statement), params)
        await engine.dispose()

    async def rows(self) -> list[dict]:
        engine = make_engine(self.url)
        async with engine.connect() as conn:
            rows = [dict(r._mapping) for r in await conn.execute(sa.text("SELECT * FROM audit ORDER BY seq"))]
        await engine.dispose()
        return rows

    async def verify(self, *args: str) -> tuple[int, str, str]:
        env = {"SAFESHARE_HOME": str(self.settings.home), "SAFESHARE_DATABASE_URL": self.url}
        result = await asyncio.to_thread(CliRunner().invoke, app, ["audit", "verify", *args], env=env)
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture
async def chain(settings: Settings, store_url: str) -> Chain:
    await upgrade_database(store_url)
    store = await Store.open(store_url, crypto.read_secret(settings.store_key_file),
                             audit_key=crypto.SigningKey.load(settings.audit_key_file), checkpoint_every=4)
    for i in range(1, ENTRIES + 1):
        at = T0 + timedelta(minutes=i)
        await store.record_step(request_id=f"r-{i % 3}", step=f"{i:05d}-step", event="step", actor="np-dsl",
                                at=at, data={"i": i}, note=None, notices=[], now=at)
    await store.close()
    return Chain(settings, store_url)


def rehash(row: dict, *, seq: int, prev_hash: str) -> dict:
    """What a forger with write access to the database would do to make one entry look right."""
    fields = {k: row[k] for k in ("request_id", "step", "event", "actor", "at")}
    at = fields["at"]
    if not isinstance(at, datetime):  # SQLite hands back text
        at = datetime.fromisoformat(at).replace(tzinfo=UTC)
    digest = entry_hash(seq=seq, data=json.loads(row["data"]), prev_hash=prev_hash, **{**fields, "at": at})
    return {**row, "seq": seq, "prev_hash": prev_hash, "hash": digest, "at": at}


async def test_untampered_log_verifies(chain: Chain) -> None:
    code, out, err = await chain.verify()
    assert code == 0, err
    assert f"{ENTRIES} entries, 2 signed checkpoints" in out


async def test_altered_entry_is_reported(chain: Chain) -> None:
    await chain.sql("UPDATE audit SET data = '{\"i\": 99}' WHERE seq = 6")
    code, _, err = await chain.verify()
    assert code == AUDIT_BROKEN
    assert "broken at entry 6" in err and "altered" in err


async def test_removed_entry_is_reported(chain: Chain) -> None:
    await chain.sql("DELETE FROM audit WHERE seq = 5")
    code, _, err = await chain.verify()
    assert code == AUDIT_BROKEN
    assert "broken at entry 5" in err and "missing" in err


async def test_entries_removed_from_the_end_are_reported(chain: Chain) -> None:
    await chain.sql("DELETE FROM audit WHERE seq >= 9")
    code, _, err = await chain.verify()
    assert code == AUDIT_BROKEN
    assert "broken at entry 9" in err and "removed from the end" in err


async def test_inserted_entry_is_reported(chain: Chain) -> None:
    """A forged entry slotted in after entry 5, the later ones renumbered to make room."""
    rows = await chain.rows()
    forged = rehash({**rows[5], "step": "00099-forged", "data": '{"i": 0}'}, seq=6, prev_hash=rows[4]["hash"])
    await chain.sql("UPDATE audit SET seq = seq + 100 WHERE seq >= 6")
    await chain.sql("UPDATE audit SET seq = seq - 99 WHERE seq >= 106")
    await chain.sql("INSERT INTO audit (seq, request_id, step, event, actor, at, data, prev_hash, hash) "
                    "VALUES (:seq, :request_id, :step, :event, :actor, :at, :data, :prev_hash, :hash)", **forged)
    code, _, err = await chain.verify()
    assert code == AUDIT_BROKEN
    assert "broken at entry 7" in err and "does not follow entry 6" in err


async def test_reordered_entries_are_reported(chain: Chain) -> None:
    await chain.sql("UPDATE audit SET seq = 1000 WHERE seq = 3", "UPDATE audit SET seq = 3 WHERE seq = 4",
                    "UPDATE audit SET seq = 4 WHERE seq = 1000")
    code, _, err = await chain.verify()
    assert code == AUDIT_BROKEN
    assert "broken at entry 3" in err and "does not follow entry 2" in err


async def test_a_rewritten_chain_is_caught_by_the_signed_checkpoint(chain: Chain) -> None:
    """Whoever alters entry 6 and re-hashes every later entry keeps the chain consistent, but
    cannot re-sign the checkpoint at entry 8."""
    rows = await chain.rows()
    prev = rows[4]["hash"]
    for row in rows[5:]:
        data = '{"i": 99}' if row["seq"] == 6 else row["data"]
        new = rehash({**row, "data": data}, seq=row["seq"], prev_hash=prev)
        await chain.sql("UPDATE audit SET data = :data, prev_hash = :prev_hash, hash = :hash WHERE seq = :seq",
                        **{k: new[k] for k in ("data", "prev_hash", "hash", "seq")})
        prev = new["hash"]
    await chain.sql("UPDATE audit_head SET hash = :hash", hash=prev)
    code, _, err = await chain.verify()
    assert code == AUDIT_BROKEN
    assert "broken at entry 8" in err and "chain rewritten" in err


async def test_a_forged_checkpoint_signature_is_reported(chain: Chain) -> None:
    forger = crypto.SigningKey.generate()
    await chain.sql("UPDATE audit_checkpoints SET signature = :sig WHERE seq = 4",
                    sig=forger.sign(b"anything"))
    code, _, err = await chain.verify()
    assert code == AUDIT_BROKEN
    assert "broken at entry 4" in err and "checkpoint at entry 4: signature does not verify" in err


async def test_checkpoints_do_not_verify_under_another_deployments_key(chain: Chain) -> None:
    other = chain.settings.home / "other.pub"
    other.write_text(crypto.SigningKey.generate().public_b64)
    code, _, err = await chain.verify("--public-key", str(other))
    assert code == AUDIT_BROKEN and "checkpoint at entry 4: signature does not verify" in err


async def test_a_missing_or_malformed_public_key_is_bad_input(chain: Chain) -> None:
    bad = chain.settings.home / "bad.pub"
    bad.write_text("not a key")
    code, _, err = await chain.verify("--public-key", str(bad))
    assert code == 2 and "--public-key" in err
    code, _, err = await chain.verify("--public-key", str(chain.settings.home / "absent.pub"))
    assert code == 2 and "--public-key" in err


def _chain(n: int) -> list[AuditEntry]:
    rows, prev = [], "0" * 64
    for seq in range(1, n + 1):
        row = {"seq": seq, "request_id": f"r-{seq % 3}", "step": f"{seq:05d}-s", "event": "s", "actor": "a",
               "at": T0 + timedelta(minutes=seq), "data": json.dumps({"i": seq}), "prev_hash": prev}
        row["hash"] = rehash(row, seq=seq, prev_hash=prev)["hash"]
        rows.append(AuditEntry(**row))
        prev = row["hash"]
    return rows


@settings_(max_examples=200, deadline=None)
@given(n=st.integers(2, 12), data=st.data())
def test_any_change_to_any_field_of_any_entry_is_caught_at_or_before_it(n: int, data: st.DataObject) -> None:
    """Property: whatever one field of whichever entry a forger changes, verification fails, and
    the first bad entry it names is no later than the one changed."""
    rows = _chain(n)
    head = ChainHead(seq=n, hash=rows[-1].hash)
    assert verify_chain(rows, [], head, None).ok
    i = data.draw(st.integers(0, n - 1))
    field = data.draw(st.sampled_from(["seq", "request_id", "step", "event", "actor", "at", "data", "prev_hash",
                                       "hash"]))
    old = getattr(rows[i], field)
    if field == "seq":
        new = old + data.draw(st.integers(1, 5))
    elif field == "at":
        new = old + timedelta(seconds=data.draw(st.integers(1, 10**6)))
    elif field == "data":
        new = json.dumps({"i": -1})
    elif field in ("prev_hash", "hash"):
        new = data.draw(st.text("0123456789abcdef", min_size=64, max_size=64).filter(lambda h: h != old))
    else:
        new = old + data.draw(st.text(min_size=1, max_size=3))
    rows[i] = replace(rows[i], **{field: new})
    report = verify_chain(sorted(rows, key=lambda r: r.seq), [], head, None)
    assert not report.ok and report.first_bad_seq is not None and report.first_bad_seq <= i + 1
