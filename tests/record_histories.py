"""`make histories`: record a history for every workflow path, for the replay tests.

Each path runs on the time-skipping server with a fresh demo home; the histories are saved
encrypted, exactly as a production server holds them, and the codec keys that decrypt them (the
ring and the history-key vault: test fixtures, never real keys) are kept next to them.
Each recording is a set of its own (`tests/histories/<set>/`, with its own keys), never
overwritten: every set is replayed by every test run (docs/VERSIONING.md says when one is added).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

import crypto
from clients import Settings, history_runs, open_codec
from schemas import DecisionAction, HoldAction, RecallAction, workflow_id
from store import Store
from workers import ACKNOWLEDGE, REVIEW, ROUTINE, SCRIPTS, ensure_demo_home, in_stage, load_home, running_worker

from .conftest import BIN, Stack, TrackingClient, register_search_attributes

HISTORIES = Path(__file__).resolve().parent / "histories"
TWO_DAYS = timedelta(days=2, minutes=1)
YEAR = timedelta(days=366)


async def _runs(stack: Stack, request_id: str) -> list[WorkflowHistory]:
    """The request's runs, oldest first."""
    return await history_runs(stack.client.client, workflow_id(request_id))


async def routine_shared(stack: Stack) -> str:
    req = await stack.routine("retention")
    await stack.env.sleep(YEAR * 2)  # two yearly continue-as-new runs of the retention wait
    return req.request_id


async def override_partial(stack: Stack) -> str:
    req = await stack.request("health-special-category")
    await stack.client.submit(req)
    consent_refused, override, approve, acknowledge = SCRIPTS["health-special-category"]
    one_item = replace(approve, items=("camhs-referral",))
    await stack.actors.drive(req, [consent_refused, override, one_item, acknowledge], "retention")
    return req.request_id


async def declined_with_hold(stack: Stack) -> str:
    rid = await stack.declined()
    await stack.client.hold(rid, HoldAction(hold=True, reason="inquiry", by="np-dpo"))
    await stack.client.hold(rid, HoldAction(hold=False, reason="closed", by="np-dpo"))
    return rid


async def emergency_review(stack: Stack) -> str:
    req = await stack.request("emergency-override")
    await stack.client.submit(req)
    concerns = replace(REVIEW, decision="decline", reason="Concerns about the share.")
    await stack.actors.drive(req, [ACKNOWLEDGE, concerns], "retention")
    return req.request_id


async def silence_escalates(stack: Stack) -> str:
    req = await stack.request("routine-consent")
    rid = req.request_id
    await stack.client.submit(req)
    await stack.until(rid, in_stage("consent"))
    await stack.env.sleep(timedelta(days=6))  # consent times out
    await stack.until(rid, in_stage("manager_review"))
    for _ in range(3):
        await stack.env.sleep(TWO_DAYS)
    await stack.until(rid, lambda s: s.overdue)
    await stack.client.decide(rid, DecisionAction(decision="decline", manager="np-head", reason="late",
                                                      judgement="Disclosing now would do more harm than good."))
    await stack.until(rid, in_stage("retention"))
    return rid


async def receipt_reminded(stack: Stack) -> str:
    req = await stack.routine("receipt")
    await stack.env.sleep(timedelta(days=7))  # a reminder, then escalation
    await stack.actors.drive(req, ROUTINE, "retention")  # acknowledged late
    return req.request_id


async def recalled(stack: Stack) -> str:
    req = await stack.routine("receipt")
    action = RecallAction(manager="np-dsl", reason="sent in error")
    await stack.client.recall(req.request_id, action, stack.client.own_key("np-dsl"))
    await stack.until(req.request_id, in_stage("retention"))
    return req.request_id


async def deleted(stack: Stack) -> str:
    rid = await stack.declined()
    await stack.run_to_end(rid)
    return rid


PATHS: dict[str, Callable[[Stack], Awaitable[str]]] = {
    "routine-shared": routine_shared,
    "override-partial": override_partial,
    "declined-with-hold": declined_with_hold,
    "emergency-review": emergency_review,
    "silence-escalates": silence_escalates,
    "receipt-reminded": receipt_reminded,
    "recalled": recalled,
    "deleted": deleted,
}


async def record(out: Path) -> list[str]:
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings.from_env({"SAFESHARE_HOME": tmp})
        ensure_demo_home(settings)
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(BIN / "temporal-test-server"), data_converter=pydantic_data_converter)
        try:
            await register_search_attributes(env.client)
            codec = await open_codec(settings)
            temporal = Client(env.client.service_client, namespace=env.client.namespace,
                              data_converter=crypto.data_converter(codec))
            directory, _, store_key = load_home(settings)
            store = await Store.open(settings.database_url, store_key)
            client = TrackingClient(temporal, directory, f"record-{uuid.uuid4()}")
            client.started, client.settings, client.clock = [], settings, env.get_current_time
            async with running_worker(temporal, settings, client.task_queue):
                stack = Stack(env, client, store, settings, codec)
                for name, path in PATHS.items():
                    rid = await path(stack)
                    runs = await _runs(stack, rid)
                    if name == "deleted":  # earlier runs are shredded by design: keep the tombstone run
                        runs = runs[-1:]
                    for n, history in enumerate(runs):
                        target = out / f"{name}.run{n + 1}.json"
                        target.write_text(json.dumps({"workflowId": workflow_id(rid), **json.loads(history.to_json())}))
                        written.append(target.name)
                    # Ended now: later paths skip decades, and would delete it (shredding its key).
                    await client.end_all()
                    client.started = []
            await store.close()
            await codec.vault.close()
        finally:
            await env.shutdown()
        keys = out / "keys"
        keys.mkdir(exist_ok=True)
        shutil.copyfile(settings.codec_ring_file, keys / "codec-ring.json")
        shutil.copyfile(settings.home / "keys" / "vault.db", keys / "vault.db")
    return written


def main() -> None:
    """`make histories NAME=v2-what-changed`: a new set beside the others, which stay and replay."""
    if len(sys.argv) != 2 or not sys.argv[1].replace("-", "").isalnum():
        sys.exit("usage: python -m tests.record_histories SET_NAME (letters, digits, dashes)")
    out = HISTORIES / sys.argv[1]
    if out.exists():
        sys.exit(f"tests/histories/{sys.argv[1]} exists: recorded sets are kept, choose a new name")
    out.mkdir(parents=True)
    for name in asyncio.run(record(out)):
        sys.stdout.write(f"recorded tests/histories/{out.name}/{name}\n")


if __name__ == "__main__":
    main()
