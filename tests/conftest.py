"""One time-skipping Temporal server for the session; a fresh home, store and task queue per test."""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

import crypto
from clients import SafeshareClient, Settings, Submitted, open_codec, read_request
from schemas import (
    SEARCH_ATTRIBUTES,
    AckAction,
    ChallengeAction,
    ConsentAction,
    DecisionAction,
    HoldAction,
    OverrideAction,
    RateAction,
    ShareRequest,
    Signed,
    Stage,
    Status,
    WithdrawAction,
)
from store import Store, upgrade_database
from workers import (
    DECLINE,
    ROUTINE,
    Actors,
    Pace,
    demo_key,
    ensure_demo_home,
    eventually,
    load_home,
    running_worker,
)

from .browser import browser, page  # noqa: F401 - the page tests' fixtures

BIN = Path(sys.executable).parent
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

_INDEXED = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


async def register_search_attributes(client: Client) -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={k: _INDEXED[v] for k, v in SEARCH_ATTRIBUTES.items()},
        )
    )


@pytest.fixture(scope="session")
async def env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(BIN / "temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(environment.client)
    yield environment
    await environment.shutdown()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = Settings.from_env({"SAFESHARE_HOME": str(tmp_path / "home")})
    ensure_demo_home(s)
    return s


# Request ids never hold a date: digits become letters, so a random id cannot look like one.
_LETTERS = str.maketrans("0123456789", "ghijklmnop")


def example(name: str, **changes: object) -> ShareRequest:
    """An example request with a fresh id, so that tests never share a workflow id."""
    request = read_request(EXAMPLES / "requests" / f"{name}.yaml")
    data = request.model_dump(mode="json")
    data.update({"request_id": f"t-{uuid.uuid4().hex[:16].translate(_LETTERS)}", **changes})
    return ShareRequest.model_validate(data)


AUTO: Any = object()


class TrackingClient(SafeshareClient):
    """Remembers what a test started, so teardown can end it: a workflow left waiting on a task
    queue with no worker would stop the shared test server from skipping time for later tests.

    Actors sign with their own demo key unless a test says otherwise: `key=None` sends the action
    exactly as given (unsigned, or signed by the test)."""

    started: list[str]
    settings: Settings
    clock: Callable[[], Awaitable[datetime]]

    def own_key(self, actor: str) -> crypto.SigningKey:
        return demo_key(self.settings, self.directory, actor)

    def _key(self, action: Signed, key: Any) -> crypto.SigningKey | None:
        return (self.own_key(action.signer) if action.signer else None) if key is AUTO else key

    async def consent(self, request_id: str, action: ConsentAction, key: Any = AUTO) -> Status:
        return await super().consent(request_id, action, self._key(action, key))

    async def override(self, request_id: str, action: OverrideAction, key: Any = AUTO) -> Status:
        return await super().override(request_id, action, self._key(action, key))

    async def decide(self, request_id: str, action: DecisionAction, key: Any = AUTO) -> Status:
        return await super().decide(request_id, action, self._key(action, key))

    async def withdraw(self, request_id: str, action: WithdrawAction, key: Any = AUTO) -> Status:
        return await super().withdraw(request_id, action, self.own_key(action.signer) if key is AUTO else key)

    async def acknowledge(self, request_id: str, action: AckAction, key: Any = AUTO) -> Status:
        return await super().acknowledge(request_id, action, self._key(action, key))

    async def rate(self, request_id: str, action: RateAction, key: Any = AUTO) -> Status:
        return await super().rate(request_id, action, self._key(action, key))

    async def hold(self, request_id: str, action: HoldAction, key: Any = AUTO) -> Status:
        return await super().hold(request_id, action, self._key(action, key))

    async def challenge(self, request_id: str, action: ChallengeAction, key: Any = AUTO) -> Status:
        return await super().challenge(request_id, action, self._key(action, key))

    async def submit(
        self, request: ShareRequest, key: Any = AUTO, *, by: str | None = None, today: date | None = None,
    ) -> Submitted:
        # Intake's date checks against the test server's clock, which earlier tests moved on.
        signer = (self.own_key(by or request.requested_by) if key is AUTO else key)
        result = await super().submit(request, signer, by=by, today=today or (await self.clock()).date())
        self.started.append(result.workflow_id)
        return result

    async def end_all(self) -> None:
        for wf_id in self.started:
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(wf_id).terminate("test finished")


# The time-skipping server's tests wait and act on status queries: often, and not for long.
TESTS = Pace(first=0.02, most=0.25)


@dataclass
class Stack:
    env: WorkflowEnvironment
    client: TrackingClient
    store: Store
    settings: Settings
    codec: crypto.EncryptionCodec
    actors: Actors = field(init=False)

    def __post_init__(self) -> None:
        # Acting on status queries, as the tests wait on them: no worker here dies and replays a
        # request mid-stage, which is why automated actors elsewhere act on the stored stage.
        self.actors = Actors(self.client, self.settings, act_on="status", timeout=15, pace=TESTS)

    async def until(self, request_id: str, check: Callable[[Status], bool], timeout: float = 15) -> Status:
        """Wait for a condition on the request's status (queried, never slept on blindly)."""
        return await eventually(f"request {request_id}: the condition on its status",
                                lambda: self.client.status(request_id), check, timeout=timeout, pace=TESTS)

    async def request(self, name: str, **changes: object) -> ShareRequest:
        """An example request whose dates keep their distance from the test server's clock, which
        earlier tests may have moved on by decades."""
        skipped = (await self.env.get_current_time()).date() - datetime.now(UTC).date()
        req = example(name, **changes)
        subject = req.subject.model_copy(update={"date_of_birth": req.subject.date_of_birth + skipped})
        items = [i.model_copy(update={"recorded_on": i.recorded_on + skipped}) for i in req.items]
        return req.model_copy(update={"subject": subject, "items": items})

    async def routine(self, until: Stage, **changes: object) -> ShareRequest:
        """A routine request driven by its actors as far as `until` (consent, manager_review,
        receipt or retention): consent given, the DSL approves, the recipient acknowledges.
        `self.actors.drive(request, ROUTINE, stage)` takes it on from there."""
        req = await self.request("routine-consent", **changes)
        await self.actors.submit(req)
        await self.actors.drive(req, ROUTINE, until)
        return req

    async def declined(self, reason: str = DECLINE.reason) -> str:
        """The police's inbound request, declined by the school's DSL: in its retention wait."""
        req = await self.request("police-inbound-declined")
        await self.actors.submit(req)
        await self.actors.drive(req, [replace(DECLINE, reason=reason)], "retention")
        return req.request_id

    async def run_to_end(self, request_id: str) -> Status:
        """Skip time past the retention date, then take the workflow's result.

        The test server skips time while the test sleeps; waiting on a result alone does not
        skip over the yearly continue-as-new runs of the retention wait.
        """
        status = await self.client.status(request_id)
        assert status.retention_until is not None
        remaining = status.retention_until - await self.env.get_current_time()
        await self.env.sleep(max(remaining, timedelta(0)) + timedelta(days=1))
        return await self.client.wait(request_id)


@contextlib.asynccontextmanager
async def open_stack(
    env: WorkflowEnvironment, settings: Settings,
    connect: Callable[[crypto.EncryptionCodec], Awaitable[Client]] | None = None,
) -> AsyncIterator[Stack]:
    """A worker on a fresh task queue of the session's server, and a client, with this test's own
    codec and keys. `connect` makes the Temporal client (default: the session's connection)."""
    task_queue = f"tq-{uuid.uuid4()}"
    directory, _, store_key = load_home(settings)
    store = await Store.open(settings.database_url, store_key)
    codec = await open_codec(settings)
    if connect is None:
        temporal = Client(env.client.service_client, namespace=env.client.namespace,
                          data_converter=crypto.data_converter(codec))
    else:
        temporal = await connect(codec)
    client = TrackingClient(temporal, directory, task_queue)
    client.started, client.settings, client.clock = [], settings, env.get_current_time
    async with running_worker(temporal, settings, task_queue):
        yield Stack(env, client, store, settings, codec)
        await client.end_all()
    await codec.vault.close()
    await store.close()


# --- the store on SQLite and PostgreSQL (issue 4) ----------------------------------------------

PG_URL = os.environ.get("SAFESHARE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
async def postgres() -> str | None:
    """Why the PostgreSQL server the store suite also runs on is unreachable; None if it is reachable."""
    try:
        conn = await asyncpg.connect(PG_URL.replace("+asyncpg", "") + "/postgres", timeout=5)
    except (OSError, asyncpg.PostgresError) as err:
        return f"PostgreSQL at {PG_URL.rsplit('@', 1)[-1]} unreachable ({type(err).__name__})"
    await conn.close()
    return None


def require_postgres(unreachable: str | None) -> None:
    """Required on CI (CI=true): fail there; elsewhere skip, saying why."""
    if unreachable is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{unreachable}: the PostgreSQL store tests are required on CI")
    pytest.skip(f"{unreachable}; start it or set SAFESHARE_TEST_POSTGRES_URL to run these")


@contextlib.asynccontextmanager
async def fresh_postgres_database(server_url: str) -> AsyncIterator[str]:
    name = f"safeshare_t_{uuid.uuid4().hex[:12]}"
    admin = server_url.replace("+asyncpg", "") + "/postgres"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        yield f"{server_url}/{name}"
    finally:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path, postgres: str | None) -> AsyncIterator[str]:
    """An empty database (no schema yet) on each backend."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
        return
    require_postgres(postgres)
    async with fresh_postgres_database(PG_URL) as url:
        yield url


@pytest.fixture
def audit_key() -> crypto.SigningKey:
    return crypto.SigningKey.generate()


@pytest.fixture
async def store(store_url: str, audit_key: crypto.SigningKey) -> AsyncIterator[Store]:
    """A store at the current schema, signing a checkpoint every 4 entries."""
    await upgrade_database(store_url)
    s = await Store.open(store_url, crypto.new_key(), audit_key=audit_key, checkpoint_every=4)
    yield s
    await s.close()
@pytest.fixture
async def stack(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Stack]:
    async with open_stack(env, settings) as s:
        yield s
