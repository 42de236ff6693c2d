"""Replay across versions: every recorded path's history replays on the current workflow code.

Requests stay open for years while the code changes under them; a change that would issue
different commands for an old history fails here before it can strand a parked request
(docs/VERSIONING.md). `make histories` records the files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import crypto
from schemas import WORKFLOW_TYPE, AcceptInput, QueryName, ShareInput, Status, UpdateName
from workers._worker import RUNNER
from workflows import ShareRequestWorkflow

HISTORIES = Path(__file__).resolve().parent / "histories"
FILES = sorted(HISTORIES.glob("*/*.json"))


@contextlib.asynccontextmanager
async def fixture_codec(keys: Path, tmp_path: Path) -> AsyncIterator[crypto.EncryptionCodec]:
    """The fixture keys a set was recorded with (copied: the repository stays untouched)."""
    for name in ("codec-ring.json", "vault.db"):
        shutil.copyfile(keys / name, tmp_path / name)
    ring = crypto.KeyRing.load(tmp_path / "codec-ring.json")
    vault = await crypto.HistoryKeys.open(f"sqlite+aiosqlite:///{tmp_path / 'vault.db'}", ring)
    try:
        yield crypto.EncryptionCodec(vault)
    finally:
        await vault.close()


def load(path: Path) -> WorkflowHistory:
    # The codec keys payloads by workflow id: replay under the id the history was recorded with.
    return WorkflowHistory.from_json(json.loads(path.read_text())["workflowId"], path.read_text())


PATHS = {"routine-shared", "override-partial", "declined-with-hold", "emergency-review", "silence-escalates",
         "receipt-reminded", "deleted"}


@pytest.mark.parametrize("recorded", sorted({f.parent for f in FILES}), ids=lambda p: p.name)
def test_every_set_has_a_history_for_every_workflow_path(recorded: Path) -> None:
    assert {f.name.split(".")[0] for f in recorded.glob("*.json")} >= PATHS
    assert (recorded / "keys" / "vault.db").exists()


@pytest.mark.parametrize("path", FILES, ids=[f"{f.parent.name}/{f.stem}" for f in FILES])
async def test_recorded_history_replays_on_the_current_workflow(path: Path, tmp_path: Path) -> None:
    """Golden rule of long-lived workflows: yesterday's histories replay on today's code."""
    async with fixture_codec(path.parent / "keys", tmp_path) as codec:
        replayer = Replayer(workflows=[ShareRequestWorkflow], data_converter=crypto.data_converter(codec),
                            workflow_runner=RUNNER)
        result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


def test_the_actors_updates_with_their_validators_and_the_queries_are_registered() -> None:
    """The handlers are inherited from a base class (workflows/_actors.py); the SDK registers them
    all the same, each update with its validator, and the replays above run through them."""
    defn = workflow._Definition.must_from_class(ShareRequestWorkflow)
    names = {v for k, v in vars(UpdateName).items() if k.isupper()}
    assert set(defn.updates) == names and all(u.validator is not None for u in defn.updates.values())
    assert set(defn.queries) == {QueryName.STATUS, QueryName.REQUEST_SHA256}


@workflow.defn(name=WORKFLOW_TYPE)
class ReorderedShareRequest(ShareRequestWorkflow):
    """An incompatible change: an audited step stored before intake, on the same workflow type."""

    @workflow.run
    async def run(self, inp: ShareInput) -> Status:
        return await super().run(inp)

    async def _accept(self, accept: AcceptInput) -> None:
        self._records.add_step("intake_started")
        await self._records.store()
        await super()._accept(accept)


@pytest.mark.parametrize("recorded", sorted({f.parent for f in FILES}), ids=lambda p: p.name)
async def test_an_incompatible_change_is_caught_by_replay(recorded: Path, tmp_path: Path) -> None:
    """The replay test is not vacuous: reordering the first steps fails on every recorded set."""
    # This test module is passed through the sandbox with the workflow it defines.
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("cryptography", "tests"))
    async with fixture_codec(recorded / "keys", tmp_path) as codec:
        replayer = Replayer(workflows=[ReorderedShareRequest], data_converter=crypto.data_converter(codec),
                            workflow_runner=runner)
        result = await replayer.replay_workflow(load(recorded / "routine-shared.run1.json"),
                                                raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "nondetermin" in str(result.replay_failure).lower()
