"""The benchmark harness at a toy scale: its baseline workflow runs, its history analysis reads
what the server holds, and the crypto measurements and the report come out (`make bench` runs
the real thing against the dev server)."""

from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from benchmarks import _report
from benchmarks.__main__ import recorded_paths
from benchmarks._baseline import BaselineWorkflow, nothing
from benchmarks._crypto import crypto_costs
from benchmarks._lifecycle import BaselineActors, history_cost, latency_table, stage_times
from clients import history_runs
from workers import RUNNER


async def test_baseline_workflow_has_the_routine_lifecycles_commands_and_the_report_renders(
    env: WorkflowEnvironment,
) -> None:
    """The throughput target is a ratio against this baseline: it must issue the same commands as
    a routine request driven to deletion (10 activities, no patch marker, 3 timers, 3 updates, one
    continue-as-new)."""
    task_queue = f"bench-{uuid.uuid4()}"
    client = Client(env.client.service_client, namespace=env.client.namespace, data_converter=pydantic_data_converter)
    async with Worker(client, task_queue=task_queue, workflows=[BaselineWorkflow], activities=[nothing],
                      workflow_runner=RUNNER):
        wf_id = await BaselineActors(client, task_queue).routine("smoke")
    histories = await history_runs(client, wf_id)
    cost = history_cost(histories)
    assert cost["runs"] == 2
    assert cost["kinds"]["ACTIVITY_TASK_COMPLETED"] == 10 and "MARKER_RECORDED" not in cost["kinds"]
    assert cost["kinds"]["TIMER_STARTED"] == 3 and cost["kinds"]["WORKFLOW_EXECUTION_UPDATE_COMPLETED"] == 3
    times = stage_times(histories)
    assert {"submit_to_consent_awaited", "ack_to_retention", "retention_to_deleted"} <= set(times)

    results = {"scale": 0.01, "machine": _report.machine(), "history": {"recorded_paths": recorded_paths()},
               "latency": {"share": latency_table([times]), "baseline": latency_table([times])},
               "crypto": await crypto_costs(0.01)}
    assert results["crypto"]["bundle_seal_open"]["1MB"]["ratio"] > 0
    table = _report.table(results)
    assert "| 5 | bundle seal + open, 1MB |" in table and "path routine-shared" in table
