"""The Python client: every actor's actions on share requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from schemas import (
    TASK_QUEUE,
    AckAction,
    ChallengeAction,
    ConsentAction,
    DecisionAction,
    Directory,
    HoldAction,
    OverrideAction,
    ShareInput,
    ShareRequest,
    Status,
    check_against_directory,
    workflow_id,
)

from ._settings import Settings

WORKFLOW = "ShareRequest"


class Refused(Exception):
    """The workflow refused an action (a validator said no), or there is no such open request."""


@dataclass(frozen=True)
class Submitted:
    request_id: str
    workflow_id: str
    already_existed: bool


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address, namespace=settings.namespace, data_converter=pydantic_data_converter
    )


class SafeshareClient:
    def __init__(self, client: Client, directory: Directory, task_queue: str = TASK_QUEUE) -> None:
        self.client = client
        self.directory = directory
        self.task_queue = task_queue

    async def submit(self, request: ShareRequest) -> Submitted:
        """Check against the directory, then start once: the request id is the idempotency key."""
        check_against_directory(request, self.directory)
        wf_id = workflow_id(request.request_id)
        if await self._exists(wf_id):
            return Submitted(request.request_id, wf_id, already_existed=True)
        try:
            await self.client.start_workflow(
                WORKFLOW,
                ShareInput(request=request),
                id=wf_id,
                task_queue=self.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                search_attributes=_initial_attributes(request),
            )
        except WorkflowAlreadyStartedError:  # a concurrent submission of the same request won
            return Submitted(request.request_id, wf_id, already_existed=True)
        return Submitted(request.request_id, wf_id, already_existed=False)

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
            return await self.handle(request_id).query("status", result_type=Status)
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

    async def consent(self, request_id: str, action: ConsentAction) -> Status:
        return await self._update(request_id, "record_consent", action)

    async def override(self, request_id: str, action: OverrideAction) -> Status:
        return await self._update(request_id, "record_override", action)

    async def decide(self, request_id: str, action: DecisionAction) -> Status:
        return await self._update(request_id, "decide", action)

    async def acknowledge(self, request_id: str, action: AckAction) -> Status:
        return await self._update(request_id, "acknowledge", action)

    async def hold(self, request_id: str, action: HoldAction) -> Status:
        return await self._update(request_id, "legal_hold", action)

    async def challenge(self, request_id: str, action: ChallengeAction) -> Status:
        return await self._update(request_id, "challenge", action)

    async def list(self, stage: str | None = None, overdue: bool | None = None) -> list[dict[str, Any]]:
        """Requests as operators see them: from search attributes only."""
        clauses = [f"WorkflowType = '{WORKFLOW}'"]
        if stage is not None:
            clauses.append(f"ShareStage = '{stage}'")
        if overdue is not None:
            clauses.append(f"Overdue = {str(overdue).lower()}")
        rows = []
        async for wf in self.client.list_workflows(" AND ".join(clauses)):
            attrs = {k.name: v for k, v in ((p.key, p.value) for p in wf.typed_search_attributes)}
            rows.append({
                "request_id": wf.id.removeprefix("share-"),
                "running": wf.status == WorkflowExecutionStatus.RUNNING,
                "stage": attrs.get("ShareStage"), "outcome": attrs.get("ShareOutcome"),
                "urgency": attrs.get("Urgency"), "disclosing_agency": attrs.get("DisclosingAgency"),
                "recipient_agency": attrs.get("RecipientAgency"), "escalation_tier": attrs.get("EscalationTier"),
                "overdue": attrs.get("Overdue", False),
            })
        return rows


def _initial_attributes(request: ShareRequest) -> TypedSearchAttributes:
    # Visible to operators from the moment of submission, before the first workflow task runs.
    keyword = SearchAttributeKey.for_keyword
    return TypedSearchAttributes([
        SearchAttributePair(keyword("ShareStage"), "intake"),
        SearchAttributePair(keyword("Urgency"), request.urgency),
        SearchAttributePair(keyword("DisclosingAgency"), request.disclosing_agency),
        SearchAttributePair(keyword("RecipientAgency"), request.recipient_agency),
    ])
