"""The store on both backends: SQLite and PostgreSQL run the same code and the same tests."""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import crypto
from schemas import Notification
from store import (
    AuditStep,
    ContentDestroyed,
    NotFound,
    SchemaOutOfDate,
    Store,
    StoreError,
    make_engine,
    metadata,
    schema_head,
    upgrade_database,
)

from .conftest import BIN

T0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
ROOT = str(Path(__file__).resolve().parent.parent)


async def step(store: Store, request_id: str, name: str, *, at: datetime = T0, note: str | None = None,
               notices: list[Notification] | None = None) -> bool:
    return await store.record_step(request_id=request_id, step=name, event=name.split("-", 1)[-1], actor="system",
                                   at=at, data={"n": 1}, note=note, notices=notices or [], now=at)


async def test_db_upgrade_command_creates_the_schema_once(store_url: str, tmp_path: Path) -> None:
    """`safeshare db upgrade` is the one command that creates and migrates the schema, on either backend."""
    env = {**os.environ, "SAFESHARE_HOME": str(tmp_path / "home"), "SAFESHARE_DATABASE_URL": store_url}
    outputs = []
    for _ in range(2):
        proc = await asyncio.create_subprocess_exec(str(BIN / "safeshare"), "db", "upgrade", env=env,
                                                    stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await proc.communicate()
        assert proc.returncode == 0, output.decode()
        outputs.append(output.decode())
    assert f"at {schema_head()} (was empty)" in outputs[0]
    assert "up to date" in outputs[1]
    engine = make_engine(store_url)
    async with engine.connect() as conn:
        tables = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    await engine.dispose()
    assert {"audit", "audit_head", "audit_checkpoints", "outbox", "inbox", "records", "alembic_version"} <= tables


async def test_the_tables_the_code_uses_are_the_ones_the_migrations_make(store_url: str) -> None:
    """The schema is written twice, as tables and as migrations: they must not drift apart."""
    await upgrade_database(store_url)
    engine = make_engine(store_url)
    async with engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata))
    await engine.dispose()
    assert [d for d in diff if d[0] != "remove_table" or d[1].name != "alembic_version"] == []


async def test_sqlite_upgrades_on_open_but_postgresql_waits_for_db_upgrade(store_url: str) -> None:
    """A fresh clone runs with no manual step (SQLite); a server database is migrated deliberately."""
    if store_url.startswith("sqlite"):
        store = await Store.open(store_url, crypto.new_key())
        assert await step(store, "r-1", "00001-opened")
        await store.close()
    else:
        with pytest.raises(SchemaOutOfDate, match="safeshare db upgrade"):
            await Store.open(store_url, crypto.new_key())


async def test_content_is_encrypted_notes_kept_and_destroyed_with_the_key(store: Store) -> None:
    """Deletion is crypto-shredding: after destroy, neither the content nor the notes can be read."""
    assert await store.put_request("r-1", b"secret content", T0)
    assert not await store.put_request("r-1", b"other", T0)  # idempotent: the first stays
    assert await store.get_request("r-1") == b"secret content"
    assert await step(store, "r-1", "00001-noted", note="a reason")
    assert await store.notes_for("r-1") == {"00001-noted": "a reason"}
    await store.destroy("r-1", T0 + timedelta(days=1))
    with pytest.raises(ContentDestroyed):
        await store.get_request("r-1")
    with pytest.raises(ContentDestroyed) as gone:
        await store.notes_for("r-1")
    assert gone.value.destroyed_at == T0 + timedelta(days=1)  # what `records` shows in the notes' place
    with pytest.raises(NotFound):
        await store.get_request("r-unknown")


async def test_a_step_is_recorded_once_with_its_notifications(store: Store) -> None:
    """Idempotent under retries: the same (request, step) appends nothing and queues nothing twice."""
    await store.put_request("r-1", b"x", T0)
    notice = Notification(dedupe_key="r-1:00001-asked:asked:np-dsl", request_id="r-1", kind="asked",
                          to_contact="np-dsl", channel="email", address="dsl@example.org", subject="s", body="b")
    assert await step(store, "r-1", "00001-asked", notices=[notice])
    assert not await step(store, "r-1", "00001-asked", notices=[notice])
    assert [r.seq for r in await store.audit_trail("r-1")] == [1]
    unsent = await store.unsent("r-1", "00001-asked")
    assert [r.to_contact for r in unsent] == ["np-dsl"]
    await store.mark_sent([unsent[0].dedupe_key], T0)
    assert await store.unsent("r-1", "00001-asked") == []
    assert (await store.outbox_for("r-1"))[0].sent_at == T0


async def test_steps_record_and_acknowledgement_are_stored_together_or_not_at_all(store: Store) -> None:
    """One transaction for a stage's steps, its record and an acknowledgement (`record_steps`); a
    failure part-way stores none of it, and a retry appends nothing twice."""
    await store.put_request("r-1", b"x", T0)
    await store.deliver(request_id="r-1", sender="a", recipient="b", bundle=b"bundle", withheld_identities=0, at=T0)
    asked, noted = (AuditStep(step=s, event=s[6:], actor="system", at=T0, data={}, note=n, notices=[])
                    for s, n in (("00001-asked", None), ("00002-noted", "a reason")))
    await store.put_request("r-2", b"y", T0)
    await store.destroy("r-2", T0)  # its key is gone: the note cannot be stored
    with pytest.raises(ContentDestroyed):
        await store.record_steps("r-2", [asked, noted], record=('{"v": 1}', T0), now=T0)
    assert await store.audit_trail("r-2") == [] and await store.record("r-2") is None

    later = T0 + timedelta(hours=1)
    for attempt in range(2):
        done = await store.record_steps("r-1", [asked, noted], record=('{"v": 1}', later), acknowledged_at=later,
                                        now=later)
        assert done == (["00001-asked", "00002-noted"] if attempt == 0 else [])
    assert [e.step for e in await store.audit_trail("r-1")] == ["00001-asked", "00002-noted"]
    assert await store.notes_for("r-1") == {"00002-noted": "a reason"}
    assert await store.record("r-1") == '{"v": 1}'
    assert [r.acknowledged_at for r in await store.inbox_for("b")] == [later]


async def test_delivery_happens_once_and_records_upsert(store: Store) -> None:
    first = await store.deliver(request_id="r-1", sender="a", recipient="b", bundle=b"bundle",
                                withheld_identities=1, at=T0)
    again = await store.deliver(request_id="r-1", sender="a", recipient="b", bundle=b"other",
                                withheld_identities=0, at=T0 + timedelta(hours=1))
    assert again.bundle_sha256 == first.bundle_sha256 and again.delivered_at == T0
    await store.mark_pushed("r-1", T0)
    await store.mark_pushed("r-1", T0 + timedelta(hours=1))
    assert (await store.delivery("r-1")).pushed_at == T0
    await store.record_steps("r-1", [], record=('{"v": 1}', T0), now=T0)
    await store.record_steps("r-1", [], record=('{"v": 2}', T0), now=T0)
    assert await store.record("r-1") == '{"v": 2}'


async def test_records_are_selected_by_the_day_their_request_was_accepted(store: Store) -> None:
    for rid, day in (("r-early", 1), ("r-in", 10), ("r-late", 20)):
        at = datetime(2026, 3, day, 23, 59, tzinfo=UTC)
        await store.put_request(rid, b"x", at)
        await store.record_steps(rid, [], record=(f'"{rid}"', at), now=at)
    rows = await store.records_accepted(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 20, tzinfo=UTC))
    assert [r.body for r in rows] == ['"r-in"']


async def test_chain_links_each_entry_to_the_last_and_signs_checkpoints(
    store: Store, audit_key: crypto.SigningKey
) -> None:
    for i in range(9):
        await step(store, f"r-{i % 3}", f"{i:05d}-step")
    trail = await store.audit_trail()
    assert [r.seq for r in trail] == list(range(1, 10))
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(trail))
    report = await store.verify_audit(audit_key.public_b64)
    assert report.ok and report.entries == 9 and report.checkpoints == 2  # at 4 and 8
    assert await store.checkpoint(T0) == 9
    assert (await store.verify_audit(audit_key.public_b64)).checkpoints == 3


async def test_appenders_in_separate_processes_keep_one_linear_chain(
    store: Store, store_url: str, audit_key: crypto.SigningKey, tmp_path: Path
) -> None:
    """Several workers (processes, each with its own engine) append at once: the chain head's
    row lock (FOR UPDATE / BEGIN IMMEDIATE) serialises them into one chain, nothing lost."""
    key_file = tmp_path / "audit.key"
    audit_key.save(key_file)
    procs, count = [], 15
    for n in range(4):
        procs.append(await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.appender", store_url, str(key_file), f"w{n}", str(count),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE))
    async with asyncio.timeout(60):
        for p in procs:  # every appender has its engine open before any starts
            assert await p.stdout.readline() == b"ready\n"
        for p in procs:
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        for p in procs:
            assert await p.stdout.readline() == b"done\n"
            assert await p.wait() == 0
    trail = await store.audit_trail()
    assert [r.seq for r in trail] == list(range(1, 4 * count + 1))
    assert {r.actor for r in trail} == {"w0", "w1", "w2", "w3"}
    report = await store.verify_audit(audit_key.public_b64)
    assert report.ok, report.problems
    assert report.checkpoints == (4 * count) // 7


async def test_a_store_made_before_migrations_is_refused_with_what_to_do(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"
    engine = make_engine(url)
    async with engine.begin() as conn:
        await conn.execute(sa.text("CREATE TABLE audit (seq INTEGER PRIMARY KEY)"))
    await engine.dispose()
    with pytest.raises(StoreError, match="created before schema migrations"):
        await Store.open(url, crypto.new_key())
