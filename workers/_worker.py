"""The Safeshare worker: the share-request workflow and its activities on one task queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities import ShareActivities
from clients import Settings
from schemas import TASK_QUEUE
from store import Store
from workflows import ShareRequestWorkflow

from ._home import agency_keys, load_home

log = structlog.get_logger("safeshare.worker")


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, task_queue: str = TASK_QUEUE
) -> AsyncIterator[Worker]:
    directory, policy, store_key = load_home(settings)
    store = await Store.open(settings.database_url, store_key)
    acts = ShareActivities(store, directory, policy, agency_keys(settings))
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[ShareRequestWorkflow],
        activities=[
            acts.accept_request, acts.record_event, acts.seal_and_deliver,
            acts.write_record, acts.mark_acknowledged, acts.destroy_content,
        ],
    )
    try:
        async with worker:
            log.info("worker_started", task_queue=task_queue, namespace=client.namespace)
            yield worker
    finally:
        await store.close()
        log.info("worker_stopped", task_queue=task_queue)


async def run_worker(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    async with running_worker(client, settings, settings.task_queue):
        await stop.wait()
