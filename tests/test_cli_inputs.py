"""The command line's inputs and outputs (issue 12): filters, ids that become paths, required
options, what a table and an action print.

Rules protected: bad input is refused with exit 2 naming the option, before anything is asked or
written; no input can widen a visibility query or name a file outside the keys folder; every
request is listed once; an id is never shown cut; what the CLI prints is true when it is read.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from temporalio.client import WorkflowExecution, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

import crypto
from clients import SafeshareClient, Settings
from clients._cli import _resources, app
from schemas import Agency, Contact, Directory, ShareRequest, visibility_query, workflow_id
from workers import ACKNOWLEDGE, SCRIPTS, Step, end_retention_at_record, eventually, in_stage

from .conftest import BIN, Stack, open_stack, register_search_attributes

HOSTILE_STAGES = [
    "consent' OR WorkflowType != 'x",  # closes the literal and widens the query
    "consent'",
    "x' OR ShareStage = 'deleted",
    "Consent",
    "consent ",
    "",
    "retention\n",
    "consent\\",
]


def invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


@pytest.fixture
def nothing_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command must refuse before it reaches Temporal: reaching it fails the test."""

    def client(*_: object) -> Any:
        raise AssertionError("the command connected to Temporal")

    monkeypatch.setattr(_resources, "client", client)


# --- 1. visibility queries ---------------------------------------------------------------------


def test_visibility_query_writes_every_value_as_one_literal() -> None:
    """A value's quotes are doubled inside its literal, so it cannot end the literal early."""
    query = visibility_query(("WorkflowType", "=", "ShareRequest"), ("ShareStage", "=", "x' OR ShareStage != 'x"),
                             ("ExecutionStatus", "!=", "ContinuedAsNew"), ("Overdue", "=", True),
                             ("EscalationTier", "=", 2))
    assert query == ("WorkflowType = 'ShareRequest' AND ShareStage = 'x'' OR ShareStage != ''x' AND "
                     "ExecutionStatus != 'ContinuedAsNew' AND Overdue = true AND EscalationTier = 2")


@pytest.mark.parametrize("condition", [
    ("ShareStage", "=", "a\\' OR 1"),  # the server reads backslash escapes: never written
    ("ShareStage", "=", "a\nb"),
    ("ShareStage", "=", "a\x00"),
    ("ShareStage = 'x' OR WorkflowId", "=", "y"),  # names come from a fixed set
    ("ShareStage", "= 'x' OR ShareStage =", "y"),
    ("ShareStage", "LIKE", "y"),
])
def test_visibility_query_refuses_what_it_cannot_write_safely(condition: tuple[str, str, str]) -> None:
    with pytest.raises(ValueError, match="visibility query"):
        visibility_query(condition)


@pytest.mark.parametrize("stage", HOSTILE_STAGES)
def test_list_refuses_a_stage_outside_the_vocabulary_before_asking_anything(
    stage: str, nothing_connects: None, tmp_path: Path
) -> None:
    """Bad input exits 2 naming the option and what is expected; no query is made."""
    result = invoke("list", "--stage", stage, env={"SAFESHARE_HOME": str(tmp_path)})
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: stage: one of intake, consent, manager_review,"), result.stderr
    assert result.stdout == ""


class _NoQueries:
    def list_workflows(self, query: str) -> Any:
        raise AssertionError(f"queried: {query}")


async def test_the_client_refuses_a_bad_stage_too() -> None:
    """The Python client checks what it is given itself: the CLI is not the only door."""
    client = SafeshareClient(_NoQueries(), Directory(agencies=[]))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="stage: one of"):
        await client.list(stage="consent' OR WorkflowType != 'x")


# --- the real dev server: visibility queries, continue-as-new, tables ---------------------------
# The time-skipping server answers no visibility query (ListWorkflowExecutions is unimplemented),
# so these run on a local dev server; a request reaches deletion at once (retention already past),
# which continues it as new just as each year of retention does.


@pytest.fixture(scope="module")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(BIN / "temporal"), data_converter=pydantic_data_converter,
    )
    await register_search_attributes(environment.client)
    yield environment
    await environment.shutdown()


@pytest.fixture
async def dev_stack(dev_env: WorkflowEnvironment, settings: Settings) -> AsyncIterator[Stack]:
    end_retention_at_record(settings)
    async with open_stack(dev_env, settings) as stack:
        yield stack


async def test_builder_values_match_exactly_on_the_real_server(dev_env: WorkflowEnvironment) -> None:
    """An escaped quote is part of the value: it matches that value, and widens nothing."""
    stage_key = SearchAttributeKey.for_keyword("ShareStage")
    kind = f"Probe{os.getpid()}"
    handles = [
        await dev_env.client.start_workflow(
            kind, id=f"probe-{os.getpid()}-{n}", task_queue=f"nobody-{kind}",
            search_attributes=TypedSearchAttributes([SearchAttributePair(stage_key, value)]))
        for n, value in enumerate(["a'b", "other"])
    ]
    try:
        async def ids(*conditions: tuple[str, str, str]) -> set[str]:
            query = visibility_query(("WorkflowType", "=", kind), *conditions)
            return {wf.id async for wf in dev_env.client.list_workflows(query)}

        await eventually("both probes visible", ids, lambda found: len(found) == 2)  # visibility lags
        assert await ids(("ShareStage", "=", "a'b")) == {handles[0].id}
        assert await ids(("ShareStage", "=", "x' OR ShareStage != 'x")) == set()
    finally:
        for handle in handles:
            await handle.terminate("probe done")


def long_id(stack: Stack) -> str:
    """A request id of the longest kind the schema allows (64 characters)."""
    return (f"{stack.client.task_queue[3:15]}-" + "abcdefghij" * 7)[:64]


async def shared(stack: Stack, request_id: str) -> ShareRequest:
    """A routine request with this id, consented to and approved: delivered, awaiting receipt."""
    return await stack.routine("receipt", request_id=request_id)


async def acknowledged_and_deleted(stack: Stack, req: ShareRequest) -> None:
    """Acknowledged, then (retention already past) deleted: its first run continued as new into the
    run that shreds its key, and both are closed."""
    await stack.actors.take(req, ACKNOWLEDGE)

    async def runs() -> list[WorkflowExecution]:
        query = visibility_query(("WorkflowId", "=", workflow_id(req.request_id)))
        return [wf async for wf in stack.client.client.list_workflows(query)]

    def closed(runs: list[WorkflowExecution]) -> bool:
        return len(runs) >= 2 and all(r.status != WorkflowExecutionStatus.RUNNING for r in runs)

    # Waited on in visibility, not by status queries: those are what the test is not about.
    runs = await eventually("both runs closed in visibility", runs, closed)
    # The case in point: a closed continued-as-new run beside the latest, both matching the filter.
    assert WorkflowExecutionStatus.CONTINUED_AS_NEW in {r.status for r in runs}


async def safeshare(stack: Stack, *args: str, columns: int = 80) -> tuple[int, str, str]:
    """The installed CLI in its own process, on a terminal `columns` wide (rich reads COLUMNS)."""
    env = {**os.environ, "SAFESHARE_HOME": str(stack.settings.home), "COLUMNS": str(columns),
           "TEMPORAL_ADDRESS": stack.env.client.service_client.config.target_host,
           "SAFESHARE_TASK_QUEUE": stack.client.task_queue}
    proc = await asyncio.create_subprocess_exec(
        str(BIN / "safeshare"), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_list_shows_a_request_continued_as_new_once_as_its_latest_run(dev_stack: Stack) -> None:
    """Operators: one row per request, whatever runs it took, with what its latest run shows."""
    rid = long_id(dev_stack)
    await acknowledged_and_deleted(dev_stack, await shared(dev_stack, rid))

    rows = [r for r in await dev_stack.client.list() if r["request_id"] == rid]
    assert len(rows) == 1 and rows[0]["stage"] == "deleted" and rows[0]["running"] is False, rows
    assert [r["request_id"] for r in await dev_stack.client.list(stage="deleted")].count(rid) == 1
    assert rid not in [r["request_id"] for r in await dev_stack.client.list(stage="retention")]
    code, out, err = await safeshare(dev_stack, "list", "--stage", "deleted", "--json")
    assert code == 0, err
    assert [r["request_id"] for r in yaml.safe_load(out)].count(rid) == 1


async def test_tables_never_cut_an_id_at_80_columns(dev_stack: Stack) -> None:
    """A 64-character request id is shown whole, and on one line, in every table at 80 columns,
    and in `status`'s names and values."""
    rid = long_id(dev_stack)
    await shared(dev_stack, rid)

    for args in (["list"], ["inbox", "list", "--agency", "county-childrens-services"]):
        code, out, err = await safeshare(dev_stack, *args)
        assert code == 0, err
        lines = out.splitlines()
        assert "…" not in out and all(len(line) <= 80 for line in lines), out
        for whole in (rid, "northfield-primary"):  # ids, whole and on one line
            assert any(whole in line for line in lines), out
    code, out, err = await safeshare(dev_stack, "list", columns=200)  # room enough: a table
    assert code == 0 and any(rid in line and "receipt" in line for line in out.splitlines()), out
    code, out, err = await safeshare(dev_stack, "status", rid)  # names up to 30 characters beside values
    assert code == 0 and "…" not in out, err
    assert any(rid in line for line in out.splitlines()), out  # on the next line if not beside its name


# --- 3 and 4. keys init -------------------------------------------------------------------------

# Ways out of the keys folder, and ids that are not directory ids. ABS: an absolute path.
BAD_IDS = ["../../x", "..", ".", "../x", "x/../../y", "ABS", "a/b", "./x", "..x", "-x", "X", "x", "x\n"]


@pytest.mark.parametrize("option", ["--agency", "--contact"])
@pytest.mark.parametrize("key_id", BAD_IDS)
def test_keys_init_refuses_an_id_that_is_not_one_file_name(tmp_path: Path, option: str, key_id: str) -> None:
    """An id becomes a path only once it is a directory id: no key is written anywhere else."""
    home = tmp_path / "a" / "home"
    key_id = str(tmp_path / "abs") if key_id == "ABS" else key_id
    result = invoke("keys", "init", option, key_id, env={"SAFESHARE_HOME": str(home)})
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {option}: a directory id expected"), result.stderr
    assert list(tmp_path.rglob("*.key")) == []  # home/keys/<kind>/../../x.key would be in tmp_path


def test_keys_init_checks_the_id_even_with_out(tmp_path: Path) -> None:
    """With --out the id is not a path, but it still goes into the directory entry."""
    result = invoke("keys", "init", "--contact", "../m", "--out", str(tmp_path / "m.key"),
                    env={"SAFESHARE_HOME": str(tmp_path)})
    assert result.exit_code == 2 and "--contact" in result.stderr and not (tmp_path / "m.key").exists()


def test_settings_key_files_refuse_dot_segments(tmp_path: Path) -> None:
    settings = Settings.from_env({"SAFESHARE_HOME": str(tmp_path)})
    for key_id in (".", "..", "../..", "a/../.."):
        with pytest.raises(ValueError, match="--agency"):
            settings.agency_key_file(key_id)
        with pytest.raises(ValueError, match="--contact"):
            settings.contact_key_file(key_id)
    assert settings.contact_key_file("np-dsl") == tmp_path / "keys" / "contacts" / "np-dsl.key"


def _filled(entry: dict[str, Any], **values: Any) -> dict[str, Any]:
    placeholders = {k for k, v in entry.items() if isinstance(v, str) and v.startswith("<")}
    assert placeholders == set(values), placeholders
    return {**entry, **values}


def test_keys_init_prints_an_agency_entry_for_the_directory(tmp_path: Path) -> None:
    """README: `keys init` prints the directory entry; what it cannot know is a marked placeholder."""
    result = invoke("keys", "init", "--agency", "new-agency", "--suite", "X25519",
                    env={"SAFESHARE_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert "private key written to" in result.stderr and "new-agency.key" in result.stderr
    [entry] = yaml.safe_load(result.stdout)
    assert entry["id"] == "new-agency" and entry["hpke_suite"] == "X25519"
    with pytest.raises(ValueError, match="kind"):  # as printed it is not yet an entry: filling in is needed
        Agency.model_validate(entry)
    agency = Agency.model_validate(_filled(entry, name="New Agency", kind="school", safeguarding_role=True))
    keys = crypto.AgencyKeys.load(tmp_path / "keys" / "agencies" / "new-agency.key")
    assert agency.hpke_public_key == keys.hpke_public_b64 and agency.signing_public_key == keys.signing_public_b64
    # Indented for pasting under `agencies:`, as in examples/directory.yaml.
    Directory.model_validate(yaml.safe_load("agencies:\n" + yaml.safe_dump([agency.model_dump()], indent=2)))
    assert "\n  - id: new-agency\n" in "\n" + result.stdout


def test_keys_init_prints_a_contact_entry_for_the_directory(tmp_path: Path) -> None:
    result = invoke("keys", "init", "--contact", "new-manager", env={"SAFESHARE_HOME": str(tmp_path)})
    assert result.exit_code == 0, result.output
    [entry] = yaml.safe_load(result.stdout)
    assert entry["id"] == "new-manager"
    with pytest.raises(ValueError, match="role"):
        Contact.model_validate(entry)
    contact = Contact.model_validate(_filled(entry, role="manager", tier=1, email="m@agency.example"))
    key = crypto.SigningKey.load(tmp_path / "keys" / "contacts" / "new-manager.key")
    assert contact.signing_public_key == key.public_b64
    assert "\n      - id: new-manager\n" in "\n" + result.stdout  # under an agency's `contacts:`


# --- 7. required options are declared required -------------------------------------------------


@pytest.mark.parametrize(("args", "option"), [
    (["consent", "r-1", "--given"], "--by"),
    (["decide", "r-1", "--approve", "--reason", "ok"], "--manager"),
    (["decide", "r-1", "--approve", "--manager", "np-dsl"], "--reason"),
])
def test_a_missing_required_option_is_named_and_exits_2(
    args: list[str], option: str, nothing_connects: None, tmp_path: Path
) -> None:
    result = invoke(*args, env={"SAFESHARE_HOME": str(tmp_path)})
    assert result.exit_code == 2 and f"Missing option '{option}'" in result.output, result.output


@pytest.mark.parametrize(("command", "options"), [("consent", ["--by"]), ("decide", ["--manager", "--reason"])])
def test_help_shows_required_options_as_required(command: str, options: list[str]) -> None:
    help_lines = invoke(command, "--help", env={"COLUMNS": "200"}).output.splitlines()
    for option in options:
        assert any(f" {option} " in line and "[required]" in line for line in help_lines), help_lines


# --- 8. what consent, override and decide print ------------------------------------------------


async def test_actions_print_what_was_recorded_not_a_stage_already_past(stack: Stack) -> None:
    """Honest output: the update's stage is history by the time it is printed (the workflow moves
    on by itself), so the CLI says what it recorded and where to look for progress."""
    req = await stack.request("health-special-category")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, in_stage("consent"))
    env = {"SAFESHARE_HOME": str(stack.settings.home),
           "TEMPORAL_ADDRESS": stack.env.client.service_client.config.target_host,
           "SAFESHARE_TASK_QUEUE": stack.client.task_queue}
    consent_refused, override, approve, _ = SCRIPTS["health-special-category"]
    cast = stack.actors.cast(req)

    async def run(step: Step) -> str:
        result = await asyncio.to_thread(invoke, *step.argv(rid, cast, stack.settings), env=env)
        assert result.exit_code == 0, result.output
        # The line the command printed (this test's worker logs to the same stdout).
        [said] = [line for line in result.stdout.splitlines() if line.startswith(f"{rid}: ")]
        assert "stage" not in said and said.endswith(f"`safeshare status {rid}` shows where it is now"), said
        return said

    assert "recorded consent refused, by eg-gp" in await run(consent_refused)
    await stack.until(rid, in_stage("manager_review"))
    assert "recorded override (would_increase_risk_to_child), by eg-gp" in await run(override)
    items = ", ".join(approve.items or ())
    assert f"recorded decision (approve of items {items}), by eg-safeguarding-lead" in await run(approve)
    await stack.until(rid, in_stage("receipt"))

