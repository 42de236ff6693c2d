"""One time-skipping Temporal server for the session; a fresh home, store and task queue per test."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from clients import SafeshareClient, Settings, Submitted, read_request
from schemas import SEARCH_ATTRIBUTES, ShareRequest, Status
from store import Store
from workers import ensure_demo_home, load_home, running_worker

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


def example(name: str, **changes: object) -> ShareRequest:
    """An example request with a fresh id, so that tests never share a workflow id."""
    request = read_request(EXAMPLES / "requests" / f"{name}.yaml")
    data = request.model_dump(mode="json")
    data.update(request_id=f"t-{uuid.uuid4().hex[:16]}", **changes)
    return ShareRequest.model_validate(data)


class TrackingClient(SafeshareClient):
    """Remembers what a test started, so teardown can end it: a workflow left waiting on a task
    queue with no worker would stop the shared test server from skipping time for later tests."""

    started: list[str]

    async def submit(self, request: ShareRequest) -> Submitted:
        result = await super().submit(request)
        self.started.append(result.workflow_id)
        return result

    async def end_all(self) -> None:
        for wf_id in self.started:
            with contextlib.suppress(RPCError):
                await self.client.get_workflow_handle(wf_id).terminate("test finished")


@dataclass
class Stack:
    env: WorkflowEnvironment
    client: TrackingClient
    store: Store
    settings: Settings

    async def until(self, request_id: str, check: Callable[[Status], bool], timeout: float = 15) -> Status:
        """Wait for a condition on the request's status (queried, never slept on blindly)."""
        status = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    status = await self.client.status(request_id)
                    if check(status):
                        return status
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"condition not reached; last status: {status}") from None

    async def request(self, name: str, **changes: object) -> ShareRequest:
        """An example request whose child has the same age relative to the test server's clock,
        which earlier tests may have moved on by decades."""
        years = (await self.env.get_current_time()).year - 2026
        req = example(name, **changes)
        dob = req.subject.date_of_birth
        subject = req.subject.model_copy(update={"date_of_birth": dob.replace(year=dob.year + years)})
        return req.model_copy(update={"subject": subject})

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


@pytest.fixture
async def stack(env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Stack]:
    task_queue = f"tq-{uuid.uuid4()}"
    directory, _, store_key = load_home(settings)
    store = await Store.open(settings.database_url, store_key)
    client = TrackingClient(env.client, directory, task_queue)
    client.started = []
    async with running_worker(env.client, settings, task_queue):
        yield Stack(env, client, store, settings)
        await client.end_all()
    await store.close()
