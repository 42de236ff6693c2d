"""The Python client: every actor's actions on share requests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import (
    Client,
    Interceptor,
    WorkflowExecution,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistory,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

import crypto
from schemas import (
    STAGES,
    TASK_QUEUE,
    WORKFLOW_TYPE,
    AckAction,
    ChallengeAction,
    ConsentAction,
    DecisionAction,
    Directory,
    HoldAction,
    IntakeError,
    OverrideAction,
    QueryName,
    RateAction,
    RecallAction,
    SearchKey,
    ShareInput,
    ShareRequest,
    Signed,
    Status,
    Submission,
    UpdateName,
    WithdrawAction,
    check_against_directory,
    request_id_of,
    submitter_key,
    visibility_query,
    workflow_id,
)
from store import Store

from ._files import InputError
from ._settings import Settings


class Refused(Exception):
    """The workflow refused an action (a validator said no), or there is no such open request."""


class Conflict(Refused):
    """A request id already used for another request: nothing was started or changed."""


class Unavailable(Exception):
    """Temporal or a database cannot be reached: the environment's fault, not the input's (exit
    code 1). The message names the variable to check."""


@dataclass(frozen=True)
class Submitted:
    request_id: str
    workflow_id: str
    already_existed: bool


A = TypeVar("A", bound=Signed)


@contextlib.contextmanager
def database(what: str, variable: str) -> Iterator[None]:
    """Opening a database: its failures, raw socket errors included, as Unavailable naming the variable."""
    try:
        yield
    except (OSError, SQLAlchemyError) as err:
        # The type only: the driver's message may quote the URL, and with it a password.
        raise Unavailable(f"{what}: cannot use the database ({type(err).__name__}); check {variable}") from None


class _Closable(Protocol):
    async def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


@contextlib.asynccontextmanager
async def opened(opening: Awaitable[C]) -> AsyncIterator[C]:
    """What `opening` opens (a store, a key vault), closed when the block ends, however it ends
    (`contextlib.aclosing` wants an `aclose`, which neither has)."""
    resource = await opening
    try:
        yield resource
    finally:
        await resource.close()


async def open_store(
    settings: Settings, *, audit_key: crypto.SigningKey | None = None, checkpoint_every: int = 100
) -> Store:
    """The store at SAFESHARE_DATABASE_URL, opened with this deployment's store key; with the audit
    key (a worker, `audit checkpoint`) it signs a checkpoint every `checkpoint_every` entries."""
    store_key = crypto.read_secret(settings.store_key_file)
    with database("store", "SAFESHARE_DATABASE_URL"):
        return await Store.open(settings.database_url, store_key, audit_key=audit_key,
                                checkpoint_every=checkpoint_every)


async def open_vault(settings: Settings, ring: crypto.KeyRing | None = None) -> crypto.HistoryKeys:
    """The history-key vault at SAFESHARE_KEYS_URL, under this deployment's key ring or the one given."""
    if ring is None:
        ring = crypto.KeyRing.load(settings.codec_ring_file)
    with database("key vault", "SAFESHARE_KEYS_URL"):
        return await crypto.HistoryKeys.open(settings.keys_url, ring, settings.key_cache_seconds)


async def open_codec(settings: Settings) -> crypto.EncryptionCodec:
    """The payload codec over this deployment's key ring and history-key vault."""
    return crypto.EncryptionCodec(await open_vault(settings))


def create_deployment_keys(settings: Settings) -> list[Path]:
    """The deployment's own keys: store key, codec key ring, codec server token, audit checkpoint
    key, child index key and webhook secret. Created if absent, never replaced; returns the files
    written. A deployment with workers on several machines makes these once and shares them."""
    written = []
    secrets = {settings.store_key_file: crypto.new_key, settings.codec_token_file: lambda: crypto.new_token().encode(),
               settings.child_index_key_file: crypto.new_key,  # keyed hashes of child identifiers
               settings.webhook_secret_file: crypto.new_key}  # HMAC of webhook bodies
    for path, make in secrets.items():
        if not path.exists():
            crypto.write_secret(path, make())
            written.append(path)
    if not settings.codec_ring_file.exists():
        crypto.KeyRing.create(settings.codec_ring_file)
        written.append(settings.codec_ring_file)
    if not settings.audit_key_file.exists():  # signs audit checkpoints; auditors get the .pub
        key = crypto.SigningKey.generate()
        key.save(settings.audit_key_file)
        settings.audit_public_key_file.write_text(key.public_b64 + "\n")
        written += [settings.audit_key_file, settings.audit_public_key_file]
    return written


async def connect(
    settings: Settings,
    codec: crypto.EncryptionCodec,
    *,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """A client whose every payload is encrypted by the codec before it leaves this process.

    Address, namespace, TLS / mTLS and API key come from Temporal's environment configuration
    (`Settings.connect_config`); a worker passes its own runtime (metrics) and interceptors (tracing).
    Unavailable if the server cannot be reached.
    """
    config = settings.connect_config()
    try:
        return await Client.connect(
            **config, data_converter=crypto.data_converter(codec), runtime=runtime, interceptors=interceptors,
        )
    except RuntimeError:  # the core's "Failed client connect": refused, no such host, TLS, credentials
        raise Unavailable(f"Temporal: cannot connect to {settings.temporal_address}; is the server running, "
                          "and are TEMPORAL_ADDRESS and its TLS settings right?") from None


async def history_runs(client: Client, wf_id: str) -> list[WorkflowHistory]:
    """Every run of a workflow, oldest first, following each continue-as-new to the next."""
    described = await client.get_workflow_handle(wf_id).describe()
    run_id = described.raw_description.workflow_execution_info.first_run_id
    histories = []
    while run_id:
        history = await client.get_workflow_handle(wf_id, run_id=run_id).fetch_history()
        histories.append(history)
        last = history.events[-1]
        run_id = (last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
                  if last.HasField("workflow_execution_continued_as_new_event_attributes") else None)
    return histories


def sign(
    action: A, request_id: str, request_sha256: str | None, key: crypto.SigningKey, now: datetime | None = None,
) -> A:
    """The action, dated and signed by the actor's key for this request and its content (the
    digest a status shows)."""
    dated = action.model_copy(update={"signed_at": now or datetime.now(UTC), "signature": None})
    return dated.model_copy(update={"signature": key.sign(dated.signed_message(request_id, request_sha256))})


class SafeshareClient:
    def __init__(self, client: Client, directory: Directory, task_queue: str = TASK_QUEUE) -> None:
        self.client = client
        self.directory = directory
        self.task_queue = task_queue

    async def submit(
        self, request: ShareRequest, key: crypto.SigningKey | None = None, *, by: str | None = None,
        today: date | None = None,
    ) -> Submitted:
        """Check the request on the day of intake and against the directory, sign it as `by` (the
        requester, unless the requesting agency's system signs) with their key, then start once:
        the request id is the idempotency key, reused only with the same body."""
        request = request.at_intake(today or datetime.now(UTC).date())
        check_against_directory(request, self.directory)
        submission = self.submission(request, key, by or request.requested_by)
        wf_id = workflow_id(request.request_id)
        if await self._exists(wf_id):
            return await self._resubmitted(request, wf_id)
        try:
            await self.client.start_workflow(
                WORKFLOW_TYPE,
                ShareInput(request=request, submission=submission),
                id=wf_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=_initial_attributes(request),
                # Shown in the Web UI; encrypted by the codec like every payload, and free of
                # personal data all the same.
                memo={"safeshare": {"request_id": request.request_id, "direction": request.direction,
                                    "urgency": request.urgency, "purpose": request.purpose.category}},
                static_summary=f"Share request {request.request_id} ({request.urgency}, {request.direction})",
            )
        except WorkflowAlreadyStartedError:  # a concurrent submission of the same request won
            return await self._resubmitted(request, wf_id)
        return Submitted(request.request_id, wf_id, already_existed=False)

    def submission(self, request: ShareRequest, key: crypto.SigningKey | None, by: str) -> Submission:
        """The submitter's signature over the request's content, checked here as intake will check
        it, so that a submission intake would refuse starts nothing."""
        public = submitter_key(request, self.directory, by if key is not None else None)
        assert key is not None  # submitter_key refuses a submission that no key signs
        signed = sign(Submission(by=by), request.request_id, request.digest(), key)
        if not crypto.signed_by(signed, request.request_id, request.digest(), public):
            raise IntakeError("submission", f"signed with {by}'s own key (--key): this key is not theirs")
        return signed

    async def _resubmitted(self, request: ShareRequest, wf_id: str) -> Submitted:
        """The same request again is answered as already submitted; another body under its id is a
        conflict, and so is any re-use of a closed request's id (its content may be destroyed)."""
        handle = self.client.get_workflow_handle(wf_id)
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            raise Conflict("request_id: already used by a closed request; a request id is never reused")
        recorded = await handle.query(QueryName.REQUEST_SHA256, result_type=str | None)
        if recorded is not None and recorded != request.digest():
            raise Conflict("request_id: already used by a request with different content; nothing was changed "
                           "(resubmit it unchanged, or use a new request_id)")
        return Submitted(request.request_id, wf_id, already_existed=True)

    async def _exists(self, wf_id: str) -> bool:
        try:
            await self.client.get_workflow_handle(wf_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return False
            raise
        return True

    def handle(self, request_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(workflow_id(request_id))

    async def status(self, request_id: str) -> Status:
        try:
            return await self.handle(request_id).query(QueryName.STATUS, result_type=Status)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise Refused(f"request {request_id}: not found") from None
            raise

    async def wait(self, request_id: str) -> Status:
        return await self.client.get_workflow_handle(workflow_id(request_id), result_type=Status).result()

    async def _update(self, request_id: str, name: str, action: Any) -> Status:
        try:
            return await self.handle(request_id).execute_update(name, action, result_type=Status)
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            message = cause.message if isinstance(cause, ApplicationError) else "refused"
            raise Refused(message) from None
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise Refused(f"request {request_id}: no open request (not found, or completed)") from None
            raise

    async def digest(self, request_id: str) -> str | None:
        """The request's content digest, which every signed action binds."""
        try:
            return await self.handle(request_id).query(QueryName.REQUEST_SHA256, result_type=str | None)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise Refused(f"request {request_id}: not found") from None
            raise

    async def _signed_update(self, request_id: str, name: str, action: A, key: crypto.SigningKey | None) -> Status:
        # With a key, the client signs; without, the action goes as it is (the workflow refuses it
        # unless it already carries a valid signature).
        if key is not None:
            action = sign(action, request_id, await self.digest(request_id), key)
        return await self._update(request_id, name, action)

    async def consent(self, request_id: str, action: ConsentAction, key: crypto.SigningKey | None = None) -> Status:
        return await self._signed_update(request_id, UpdateName.CONSENT, action, key)

    async def override(self, request_id: str, action: OverrideAction, key: crypto.SigningKey | None = None) -> Status:
        return await self._signed_update(request_id, UpdateName.OVERRIDE, action, key)

    async def decide(self, request_id: str, action: DecisionAction, key: crypto.SigningKey | None = None) -> Status:
        return await self._signed_update(request_id, UpdateName.DECIDE, action, key)

    async def withdraw(self, request_id: str, action: WithdrawAction, key: crypto.SigningKey | None = None) -> Status:
        return await self._signed_update(request_id, UpdateName.WITHDRAW, action, key)

    async def acknowledge(self, request_id: str, action: AckAction, key: crypto.SigningKey | None = None) -> Status:
        return await self._signed_update(request_id, UpdateName.ACKNOWLEDGE, action, key)

    async def recall(self, request_id: str, action: RecallAction, key: crypto.SigningKey | None = None) -> Status:
        return await self._signed_update(request_id, UpdateName.RECALL, action, key)

    async def hold(self, request_id: str, action: HoldAction, key: crypto.SigningKey | None = None) -> Status:
        return await self._signed_update(request_id, UpdateName.LEGAL_HOLD, action, key)

    async def rate(self, request_id: str, action: RateAction, key: crypto.SigningKey | None = None) -> Status:
        return await self._signed_update(request_id, UpdateName.RATE, action, key)

    async def challenge(self, request_id: str, action: ChallengeAction, key: crypto.SigningKey | None = None) -> Status:
        return await self._signed_update(request_id, UpdateName.CHALLENGE, action, key)

    async def list(self, stage: str | None = None, overdue: bool | None = None) -> list[dict[str, Any]]:
        """Requests as operators see them, each once as its latest run shows it: from search
        attributes only."""
        conditions: list[tuple[str, str, str | int | bool]] = [
            ("WorkflowType", "=", WORKFLOW_TYPE),
            # A request continues as new (each year of retention, and at deletion): the runs it
            # closed that way are not requests of their own.
            ("ExecutionStatus", "!=", "ContinuedAsNew"),
        ]
        if stage is not None:
            conditions.append((SearchKey.STAGE.name, "=", check_stage(stage)))
        if overdue is not None:
            conditions.append((SearchKey.OVERDUE.name, "=", overdue))
        latest: dict[str, WorkflowExecution] = {}
        async for wf in self.client.list_workflows(visibility_query(*conditions)):
            # Visibility lags: a run that has just continued as new may still be listed as running.
            if wf.id not in latest or wf.start_time > latest[wf.id].start_time:
                latest[wf.id] = wf
        return [_row(wf) for wf in latest.values()]


def check_stage(stage: str) -> str:
    """A stage to filter on: one of the workflow's stages, or refused before anything is asked."""
    if stage not in STAGES:
        raise InputError([f"stage: one of {', '.join(STAGES)}"])
    return stage


def _row(wf: WorkflowExecution) -> dict[str, Any]:
    attrs = wf.typed_search_attributes
    return {
        "request_id": request_id_of(wf.id),
        "running": wf.status == WorkflowExecutionStatus.RUNNING,
        "stage": attrs.get(SearchKey.STAGE), "outcome": attrs.get(SearchKey.OUTCOME),
        "urgency": attrs.get(SearchKey.URGENCY), "disclosing_agency": attrs.get(SearchKey.DISCLOSING),
        "recipient_agency": attrs.get(SearchKey.RECIPIENT), "escalation_tier": attrs.get(SearchKey.TIER),
        "overdue": attrs.get(SearchKey.OVERDUE) or False,
    }


def _initial_attributes(request: ShareRequest) -> TypedSearchAttributes:
    # Visible to operators from the moment of submission, before the first workflow task runs.
    return TypedSearchAttributes([
        SearchAttributePair(SearchKey.STAGE, "intake"),
        SearchAttributePair(SearchKey.URGENCY, request.urgency),
        SearchAttributePair(SearchKey.DISCLOSING, request.disclosing_agency),
        SearchAttributePair(SearchKey.RECIPIENT, request.recipient_agency),
    ])
