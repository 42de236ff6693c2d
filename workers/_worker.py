"""The Safeshare worker: the share-request workflow and its activities on one task queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import structlog
from sqlalchemy.exc import SQLAlchemyError
from temporalio.api.workflowservice.v1 import SetWorkerDeploymentCurrentVersionRequest
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker, WorkerDeploymentConfig
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

import crypto
from activities import (
    Channels,
    MailDirSender,
    SmtpSender,
    StoreFailures,
    WebhookSender,
    beside,
    worker_activities,
)
from clients import Settings, Unavailable, open_store, open_vault, opened
from schemas import TASK_QUEUE
from store import PendingSteps, Store, StoreError
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


# Worker Versioning (docs/VERSIONING.md): a request moves to the current build at its next task.
# Never pinned: a request awaiting an overdue manager waits without end, and its build would have to
# run as long; so changes to what open requests replay are patched. Set on the versioned worker,
# not on the workflow type: a type that declares a behaviour is refused by unversioned workers.
VERSIONING_BEHAVIOR = VersioningBehavior.AUTO_UPGRADE


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The worker's Worker Deployment Version when it is given a build id (SAFESHARE_BUILD_ID);
    None, an unversioned worker, otherwise (the time-skipping test server has no deployments)."""
    if settings.build_id is None:
        return None
    return WorkerDeploymentConfig(
        version=WorkerDeploymentVersion(deployment_name=settings.deployment_name, build_id=settings.build_id),
        use_worker_versioning=True,
        default_versioning_behavior=VERSIONING_BEHAVIOR,
    )


async def make_current(client: Client, version: WorkerDeploymentVersion, timeout: float = 30) -> None:
    """Make `version` its deployment's Current Version: new requests start on it, and open ones move
    to it at their next workflow task. The server learns of a version from its workers' polls, and
    refuses until then (`temporal worker deployment set-current-version` does the same)."""
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=version.deployment_name, build_id=version.build_id,
        identity=client.identity,
    )
    refused: RPCError | None = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    await client.workflow_service.set_worker_deployment_current_version(request)
                    return
                except RPCError as err:
                    if err.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                        raise
                    refused = err
                await asyncio.sleep(0.1)  # its workers' first polls are on their way
    except TimeoutError:
        raise Unavailable(f"Temporal: build {version.build_id} not made current ({refused}); "
                          "are its workers polling?") from None


@asynccontextmanager
async def running_worker(
    client: Client, settings: Settings, task_queue: str = TASK_QUEUE, *, current: bool = False
) -> AsyncIterator[Worker]:
    """The worker, polling `task_queue`; with `current`, its build (if it has one) is made the
    deployment's Current Version once it polls, as `make run` does."""
    directory, policy, _ = load_home(settings)
    audit_key = crypto.SigningKey.load(settings.audit_key_file)
    versioning = deployment_config(settings)
    async with (
        opened(open_store(settings, audit_key=audit_key, checkpoint_every=settings.checkpoint_every)) as store,
        opened(open_vault(settings)) as vault,
        _on_stop(store, task_queue),
        beside(_checkpoint_every(store, settings.checkpoint_interval)),
        recording_refusals(store, PendingSteps(settings.pending_dir)) as refusals,
    ):
        worker = Worker(
            client,
            task_queue=task_queue,
            workflows=[ShareRequestWorkflow],
            activities=worker_activities(store=store, directory=directory, policy=policy,
                                         agency_keys=agency_keys(settings), history_keys=vault,
                                         channels=channels(settings),
                                         child_index_secret=crypto.read_secret(settings.child_index_key_file)),
            interceptors=[refusals, BindActivityContext(), StoreFailures()],
            workflow_runner=RUNNER,
            deployment_config=versioning,
            **settings.worker_tuning,
        )
        async with worker, census(client, settings):
            if current and versioning is not None:
                await make_current(client, versioning.version)
            log.info("worker_started", task_queue=task_queue, namespace=client.namespace,
                     version=versioning.version.to_canonical_string() if versioning else None,
                     email_channel="smtp" if settings.smtp_host else "mail_dir", store=store.dialect,
                     metrics_port=settings.metrics_port, tracing=settings.tracing)
            yield worker


@asynccontextmanager
async def _on_stop(store: Store, task_queue: str) -> AsyncIterator[None]:
    """However the worker stops, it signs the head of the audit chain it leaves."""
    try:
        yield
    finally:
        await _checkpoint(store)
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


async def run_worker(client: Client, settings: Settings, stop: asyncio.Event, *, current: bool = False) -> None:
    async with running_worker(client, settings, settings.task_queue, current=current):
        await stop.wait()
