"""The baseline: a workflow with the same commands as a routine request's lifecycle, doing nothing.

Same count of activities (10: each stage's audit entries, record and notifications go in one
activity, and an update that ends a stage has its entry stored with the next stage's; an inbox
recipient, so no push), no patch markers, timers (3, each cancelled by an update), updates (3),
search attribute upserts, one continue-as-new, no signals (the share workflow has none), on the
same sandboxed runner; but no codec, no store, no crypto
and empty activities. What the share workflow costs beyond this is the cost of Safeshare's own
work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.worker import Worker

STAGE = SearchAttributeKey.for_keyword("ShareStage")
_ACT = {"start_to_close_timeout": timedelta(seconds=60)}


@activity.defn
async def nothing(step: str) -> str:
    return step


@workflow.defn(name="BaselineShare")
class BaselineWorkflow:
    def __init__(self) -> None:
        self.stage = "intake"
        self.consented = self.decided = self.acked = False

    @workflow.run
    async def run(self, run: int) -> str:
        if run == 1:
            await self._act("accept_request")
            await self._enter("consent")
            await self._wait(lambda: self.consented, timedelta(days=5))
            await self._enter("manager_review")
            await self._wait(lambda: self.decided, timedelta(days=2))
            await self._enter("transmission", act=False)  # its entry is stored with the decision's
            await self._act("seal_and_deliver")
            await self._enter("receipt")
            await self._wait(lambda: self.acked, timedelta(days=3))
            await self._enter("retention")
            await workflow.wait_condition(workflow.all_handlers_finished)
            await self._act("dispose")
            self.stage = "deleted"
            workflow.continue_as_new(2)
        await self._act("shred_history_key")
        workflow.upsert_search_attributes([STAGE.value_set("deleted")])
        await self._act("content_destroyed")
        return "deleted"

    @workflow.query
    def status(self) -> str:
        return self.stage

    @workflow.update
    async def record_consent(self, by: str) -> str:
        self.consented = True
        await workflow.wait_condition(lambda: self.stage == "manager_review")  # stored with that stage's
        return self.stage

    @record_consent.validator
    def _check_consent(self, by: str) -> None:
        if self.stage != "consent":
            raise ValueError("not awaited")

    @workflow.update
    async def decide(self, by: str) -> str:
        self.decided = True
        await self._act("manager_approve")
        return self.stage

    @decide.validator
    def _check_decide(self, by: str) -> None:
        if self.stage != "manager_review":
            raise ValueError("not awaited")

    @workflow.update
    async def acknowledge(self, by: str) -> str:
        self.acked = True
        await workflow.wait_condition(lambda: self.stage == "retention")  # stored with that stage's
        return self.stage

    @acknowledge.validator
    def _check_ack(self, by: str) -> None:
        if self.stage != "receipt":
            raise ValueError("not awaited")

    async def _act(self, step: str) -> None:
        await workflow.execute_activity(nothing, step, **_ACT)

    async def _enter(self, stage: str, act: bool = True) -> None:
        if act:
            await self._act(f"{stage}_started")
        self.stage = stage
        workflow.upsert_search_attributes([STAGE.value_set(stage)])

    async def _wait(self, condition: Callable[[], bool], timeout: timedelta) -> None:
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(condition, timeout=timeout)


async def main() -> None:
    from clients import Settings
    from workers import RUNNER  # the share worker's sandbox settings, for a like-for-like runner
    from workers._worker import deployment_config

    settings = Settings.from_env()
    client = await Client.connect(settings.temporal_address)
    # Versioned as the share worker is (SAFESHARE_BUILD_ID, SAFESHARE_DEPLOYMENT), by the same rule.
    worker = Worker(client, task_queue=os.environ["BENCH_TASK_QUEUE"], workflows=[BaselineWorkflow],
                    activities=[nothing], workflow_runner=RUNNER, **settings.worker_tuning,
                    deployment_config=deployment_config(settings))
    async with worker:
        print("worker_started", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
