"""The Safeshare worker: the share-request workflow and its activities on one task queue."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import crypto
from activities import Channels, MailDirSender, ShareActivities, SmtpSender, StoreFailures, WebhookSender, beside
from clients import Settings, database
from schemas import TASK_QUEUE
from store import Store, StoreError
from workflows import ShareRequestWorkflow

from ._home import agency_keys, load_home
from ._logging import BindActivityContext
from ._refusals import recording_refusals
from ._telemetry import census

log = structlog.get_logger("safeshare.worker")

# Validators verify Ed25519 signatures inside the sandbox. cryptography's Rust core imports its
# exception types when a check fails; re-importing them in the sandbox crashes the interpreter,
# so the package is passed through (it is deterministic and keeps no state between calls).
RUNNER = SandboxedWorkflowRunner(
    restrictions=SandboxRestrictions.default.with_passthrough_modules("cryptography")
)


def channels(settings: Settings) -> Channels:
    """SMTP when SAFESHARE_SMTP_HOST is set; otherwise e-mails are written to home/mail (dev)."""
    email: SmtpSender | MailDirSender
    if settings.smtp_host:
        email = SmtpSender(settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.smtp_starttls)
    else:
        email = MailDirSender(settings.mail_dir, settings.smtp_from)
    webhook = WebhookSender(crypto.read_secret(settings.webhook_secret_file), settings.webhook_timeout)
    return Channels(email=email, webhook=webhook)
# Worker options an operator may tune, from the environment (docs/PERFORMANCE.md says how they
# were measured). Unset, the SDK's defaults apply, except the sticky cache: each cached workflow
# holds its sandbox (a few hundred KB), and thousands of requests park for years: measured with
# 10,000 parked, 500 held a worker at 313 MB; 300 plateaus near 245 MB. An evicted request is
# replayed (its run's events) when it wakes, once, years later.
TUNING = {
    "SAFESHARE_MAX_CACHED_WORKFLOWS": "max_cached_workflows",
    "SAFESHARE_MAX_CONCURRENT_WORKFLOW_TASKS": "max_concurrent_workflow_tasks",
    "SAFESHARE_MAX_CONCURRENT_ACTIVITIES": "max_concurrent_activities",
}
DEFAULT_TUNING = {"max_cached_workflows": 300}


def worker_tuning(env: Mapping[str, str] = os.environ) -> dict[str, int]:
    return DEFAULT_TUNING | {option: int(env[var]) for var, option in TUNING.items() if env.get(var)}


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, task_queue: str = TASK_QUEUE
) -> AsyncIterator[Worker]:
    directory, policy, store_key = load_home(settings)
    audit_key, ring = crypto.SigningKey.load(settings.audit_key_file), crypto.KeyRing.load(settings.codec_ring_file)
    with database("store", "SAFESHARE_DATABASE_URL"):
        store = await Store.open(settings.database_url, store_key, audit_key=audit_key,
                                 checkpoint_every=settings.checkpoint_every)
    with database("key vault", "SAFESHARE_KEYS_URL"):
        vault = await crypto.HistoryKeys.open(settings.keys_url, ring)
    acts = ShareActivities(store, directory, policy, agency_keys(settings), vault, channels(settings))
    try:
        async with (
            beside(_checkpoint_every(store, settings.checkpoint_interval)),
            recording_refusals(store) as refusals,
        ):
            worker = Worker(
                client,
                task_queue=task_queue,
                workflows=[ShareRequestWorkflow],
                activities=[
                    acts.accept_request, acts.record_steps, acts.send_notifications, acts.seal_and_deliver,
                    acts.push_bundle, acts.dispose, acts.shred_history_key,
                    # Scheduled only by requests begun before `folded-steps`:
                    acts.record_event, acts.write_record, acts.mark_acknowledged, acts.destroy_content,
                    acts.retire_history_key,
                ],
                interceptors=[refusals, BindActivityContext(), StoreFailures()],
                workflow_runner=RUNNER,
                **worker_tuning(),
            )
            async with worker, census(client, settings):
                log.info("worker_started", task_queue=task_queue, namespace=client.namespace,
                         email_channel="smtp" if settings.smtp_host else "mail_dir", store=store.dialect,
                         metrics_port=settings.metrics_port, tracing=settings.tracing)
                yield worker
    finally:
        await _checkpoint(store)  # a clean stop signs the head it leaves
        await vault.close()
        await store.close()
        log.info("worker_stopped", task_queue=task_queue)


async def _checkpoint(store: Store) -> None:
    try:
        seq = await store.checkpoint(datetime.now(UTC))
    except (StoreError, SQLAlchemyError, OSError) as err:
        log.warning("audit_checkpoint_failed", error=type(err).__name__)
    else:
        if seq:
            log.info("audit_checkpoint_signed", seq=seq)


async def _checkpoint_every(store: Store, seconds: float) -> None:
    """Besides one every N entries, sign the head on a clock: a quiet deployment's recent entries
    are covered too (the window in which the end of the log could be cut off unnoticed)."""
    while True:
        await asyncio.sleep(seconds)
        await _checkpoint(store)


async def run_worker(client: Client, settings: Settings, stop: asyncio.Event) -> None:
    async with running_worker(client, settings, settings.task_queue):
        await stop.wait()
