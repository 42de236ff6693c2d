"""An upgrade on the real dev server: a request started on one build finishes on the next.

Rule protected (docs/VERSIONING.md): requests auto-upgrade. Once build N+1 is the deployment's
Current Version and build N's workers are stopped, an open request moves to N+1 at its next
workflow task and goes on to its end there, through its continue-as-new; nothing waits for N.
The time-skipping server has no Worker Deployments, so this runs on the dev server.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import VersioningBehavior
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkerDeploymentVersion
from temporalio.testing import WorkflowEnvironment

from clients import Settings, history_runs
from schemas import workflow_id
from workers import ROUTINE, Actors, end_retention_at_record, ensure_demo_home, running_worker
from workers._worker import make_current

from .conftest import open_stack
from .test_cli_inputs import dev_env  # noqa: F401 - a fixture


async def test_a_request_started_on_one_build_finishes_on_the_next(
    dev_env: WorkflowEnvironment, tmp_path: Path  # noqa: F811 - the imported fixture
) -> None:
    """A routine request opened on build a and waiting for its manager when build b is made current
    and a is stopped: b takes every workflow task after that, and the request reaches deletion."""
    deployment = f"safeshare-{uuid.uuid4().hex[:8]}"

    def build(build_id: str) -> Settings:
        return Settings.from_env({"SAFESHARE_HOME": str(tmp_path / "home"), "SAFESHARE_BUILD_ID": build_id,
                                  "SAFESHARE_DEPLOYMENT": deployment})

    a, b = build("a"), build("b")
    ensure_demo_home(a)
    end_retention_at_record(a)  # a real server cannot skip years: deletion follows the record

    # Build b's workers start first, as in a deploy; nothing is routed to them until b is current.
    async with open_stack(dev_env, b) as stack:
        temporal = stack.client.client
        # Each step taken on the stage the server holds, so that it lands in a workflow task of its own.
        actors = Actors(stack.client, b, timeout=30)
        async with running_worker(temporal, a, stack.client.task_queue, current=True):
            req = await stack.request("routine-consent")
            rid = req.request_id
            await actors.submit(req)
            await actors.drive(req, ROUTINE, "manager_review")  # consent given
            await make_current(temporal, WorkerDeploymentVersion(deployment, "b"))
        # Build a is stopped; the request waits for its manager with no worker of its build left.
        try:
            async with asyncio.timeout(30):
                await actors.drive(req, ROUTINE)  # the DSL approves, the recipient acknowledges
                final = await stack.client.wait(rid)
        except (TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError) as cut_off:  # an update, or a wait
            raise AssertionError(f"the request did not go on after build a was stopped: {cut_off}") from None
        runs = await history_runs(temporal, workflow_id(rid))

    assert final.stage == "deleted" and final.outcome == "shared"
    assert len(runs) == 2  # the request's run, continued as new into the run that shreds its key
    tasks = [(run, e.workflow_task_completed_event_attributes) for run, history in enumerate(runs)
             for e in history.events if e.HasField("workflow_task_completed_event_attributes")]
    builds = [t.deployment_version.build_id for _, t in tasks]
    switch = builds.index("b")
    # a took the request up to the manager's review; every task from the switch on, in both runs, is b's.
    assert switch > 0 and set(builds[:switch]) == {"a"} and set(builds[switch:]) == {"b"}
    assert {run for run, _ in tasks[switch:]} == {0, 1}
    assert {t.deployment_version.deployment_name for _, t in tasks} == {deployment}
    assert {t.versioning_behavior for _, t in tasks} == {VersioningBehavior.VERSIONING_BEHAVIOR_AUTO_UPGRADE}
