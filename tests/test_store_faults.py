"""Store faults: PostgreSQL behind a proxy that drops every connection for a while.

Activities retry and the workflow waits; once the database is back nothing is lost or
duplicated. A statement the database refuses is not retried: it fails the step at once, saying
what kind of error it was and nothing of the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.testing import WorkflowEnvironment

import crypto
from clients import Refused, Settings
from schemas import DecisionAction
from store import AuditStep, PendingSteps, Store, upgrade_database
from workers import APPROVE, CONSENT_GIVEN, ensure_demo_home, eventually
from workers._refusals import Refusal, recording_refusals

from .conftest import PG_URL, Stack, fresh_postgres_database, open_stack, require_postgres
from .test_dev_server import free_port


class Proxy:
    """TCP between the store and PostgreSQL; `down()` drops every connection and refuses new ones."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port, self.port = upstream_port, free_port()
        self.is_down = False
        self.writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_down:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def down(self) -> None:
        self.is_down = True
        for w in self.writers:
            w.transport.abort()
        self.writers.clear()

    def up(self) -> None:
        self.is_down = False

    async def stop(self) -> None:
        self.down()
        self.server.close()
        await self.server.wait_closed()


@contextlib.asynccontextmanager
async def proxied_database(postgres: str | None) -> AsyncIterator[tuple[Proxy, str, str]]:
    """A fresh PostgreSQL database at the current schema, behind a proxy: the proxy, the URL through
    it, and the direct URL (asyncpg's form)."""
    require_postgres(postgres)
    async with fresh_postgres_database(PG_URL) as url:
        await upgrade_database(url)
        proxy = Proxy(int(PG_URL.rsplit(":", 1)[1]))
        await proxy.start()
        server, name = url.rsplit("/", 1)
        try:
            yield proxy, f"{server.rsplit(':', 1)[0]}:{proxy.port}/{name}", url.replace("+asyncpg", "")
        finally:
            await proxy.stop()


@pytest.fixture
async def proxied(
    postgres: str | None, tmp_path: Path, env: WorkflowEnvironment
) -> AsyncIterator[tuple[Stack, Proxy, str]]:
    async with proxied_database(postgres) as (proxy, through, direct):
        settings = Settings.from_env({"SAFESHARE_HOME": str(tmp_path / "home"), "SAFESHARE_DATABASE_URL": through})
        ensure_demo_home(settings)
        async with open_stack(env, settings) as stack:
            yield stack, proxy, direct


async def attempts(stack: Stack, request_id: str) -> int:
    pending = (await stack.client.handle(request_id).describe()).raw_description.pending_activities
    return max((p.attempt for p in pending), default=0)


async def test_a_database_outage_makes_the_request_wait_then_resume_without_loss(proxied) -> None:
    """Store faults: activities retry, the workflow waits, nothing lost or duplicated."""
    stack, proxy, _ = proxied
    req = await stack.routine("consent")
    rid = req.request_id

    proxy.down()
    consent = asyncio.create_task(stack.actors.take(req, CONSENT_GIVEN))
    # The step is being retried against the dead database.
    await eventually(f"request {rid}: a third attempt at its step", lambda: attempts(stack, rid), lambda n: n >= 3,
                     timeout=60)
    assert (await stack.client.status(rid)).stage == "consent" and not consent.done()

    proxy.up()
    await asyncio.wait_for(consent, 60)
    await stack.until(rid, lambda s: s.stage == "manager_review", timeout=60)
    events = [e.event for e in await stack.store.audit_trail(rid)]
    assert events.count("consent_given") == 1 and events.count("request_accepted") == 1
    assert (await stack.store.verify_audit(stack.settings.audit_public_key_file.read_text().strip())).ok


async def test_a_statement_the_database_refuses_fails_the_step_at_once_and_clearly(proxied) -> None:
    """What retrying cannot fix is non-retryable, and the failure names the kind, not the data."""
    stack, _, direct_url = proxied
    req = await stack.routine("consent")
    rid = req.request_id
    conn = await asyncpg.connect(direct_url)
    try:  # an operator's mistake: the records table is gone
        await conn.execute("DROP TABLE records")
    finally:
        await conn.close()

    await stack.actors.drive(req, [CONSENT_GIVEN, APPROVE])
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(stack.client.wait(rid), 60)
    activity_error = failed.value.cause
    assert isinstance(activity_error, ActivityError)
    cause = activity_error.cause
    assert isinstance(cause, ApplicationError) and cause.type == "StoreError" and cause.non_retryable
    assert "ProgrammingError" in cause.message and req.subject.name not in cause.message
    history = await stack.client.handle(rid).fetch_history()
    failed_attempt = [e for e in history.events if e.HasField("activity_task_started_event_attributes")][-1]
    assert failed_attempt.activity_task_started_event_attributes.attempt == 1  # not retried
    assert (await stack.client.handle(rid).describe()).status == WorkflowExecutionStatus.FAILED
    assert json.dumps(str(failed.value)).find(req.subject.name) == -1


async def test_a_stored_model_that_no_longer_validates_fails_at_once_without_quoting_it() -> None:
    """A stored request that no longer validates fails the step non-retryably, and the failure
    (which Temporal keeps and the SDK logs) names the field, never the value it holds."""
    from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

    from activities import StoreFailures
    from schemas import RequestAt

    canary = "canary-name-2014-07-09"

    class Raising(ActivityInboundInterceptor):
        async def execute_activity(self, input: ExecuteActivityInput) -> object:
            return RequestAt.model_validate_json(json.dumps({"request_id": canary.upper(), "at": "x"}))

    inbound = StoreFailures().intercept_activity(Raising(None))  # type: ignore[arg-type]
    with pytest.raises(ApplicationError) as failed:
        await inbound.execute_activity(None)  # type: ignore[arg-type]
    assert failed.value.non_retryable and failed.value.type == "InvalidModel"
    assert "request_id" in failed.value.message and "at" in failed.value.message
    assert canary.upper() not in failed.value.message and "input" not in failed.value.message


def kept(pending: PendingSteps) -> Callable[[], Awaitable[int]]:
    async def count() -> int:
        return pending.count()
    return count


async def test_an_action_refused_while_the_database_is_down_is_audited_once_it_is_back(proxied) -> None:
    """Every refused attempt reaches the audit log: written down on disk as it is refused, appended
    once the store answers again, never lost to the outage."""
    stack, proxy, _ = proxied
    req = await stack.routine("manager_review")
    rid = req.request_id
    pending = PendingSteps(stack.settings.pending_dir)

    proxy.down()
    unsigned = DecisionAction(decision="approve", manager="np-dsl", reason="proportionate")
    with pytest.raises(Refused, match="decision: unsigned"):
        await stack.client.decide(rid, unsigned, key=None)
    assert pending.count() == 1  # on disk before the actor was answered

    proxy.up()
    await eventually(f"request {rid}: the refusal appended", kept(pending), lambda n: n == 0, timeout=60)
    refused = [e for e in await stack.store.audit_trail(rid) if e.event == "action_refused"]
    assert [(e.actor, json.loads(e.data)["action"]) for e in refused] == [("np-dsl", "decide")]


async def test_refusals_a_stopped_worker_could_not_append_are_appended_when_it_starts_again(
    postgres: str | None, tmp_path: Path,
) -> None:
    """A worker that stops while the store is down leaves its refusals on disk (owner-only); the
    next one appends them first, each once, however often it is tried."""
    async with proxied_database(postgres) as (proxy, through, _):
        store = await Store.open(through, crypto.new_key())
        pending = PendingSteps(tmp_path / "pending")
        refusal = Refusal("share-r-stopped", "update-1", "decide", "np-dsl", "decision: unsigned")
        try:
            proxy.down()
            async with recording_refusals(store, pending) as recorder:
                recorder._report(refusal)  # what the interceptor does as a validator refuses
                recorder._report(refusal)  # the same refusal seen twice (a retried workflow task)
            assert pending.count() == 1
            [file] = (tmp_path / "pending").glob("*.json")
            assert file.stat().st_mode & 0o777 == 0o600 and file.parent.stat().st_mode & 0o777 == 0o700

            proxy.up()
            async with recording_refusals(store, pending):
                await eventually("the kept refusal appended", kept(pending), lambda n: n == 0, timeout=60)
            pending.keep("r-stopped", AuditStep(step="refused-update-1", event="action_refused", actor="np-dsl",
                                                at=datetime.now(UTC), data={}, note=None, notices=[]))
            await pending.flush(store, datetime.now(UTC))  # appended again after a crash: a no-op
            trail = await store.audit_trail("r-stopped")
            assert [(e.step, e.actor) for e in trail] == [("refused-update-1", "np-dsl")]
        finally:
            await store.close()
