"""The example requests' actors, scripted: who acts, signing with their demo keys, and a driver that
takes each of their steps once it is due.

`safeshare demo`, the tests, the crash test and the benchmarks drive requests with it, so each
example's script is written once (`SCRIPTS`). The actors are the demo partnership's
(examples/directory.yaml): the practitioner who made the request, the disclosing agency's
first-tier manager, and the recipient agency.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from typing import Literal, TypeVar

from temporalio.api.errordetails.v1 import QueryFailedFailure
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

import crypto
from clients import Refused, SafeshareClient, Settings, Submitted, open_delivery
from schemas import (
    AckAction,
    ConsentAction,
    DecisionAction,
    Directory,
    OverrideAction,
    OverrideGround,
    SearchKey,
    ShareRequest,
    Stage,
    Status,
)

from ._poll import Pace, eventually

T = TypeVar("T")
Action = ConsentAction | OverrideAction | DecisionAction | AckAction
ActOn = Literal["stored_stage", "status"]
ACTING = Pace(first=0.05, most=1.0)  # how often an actor looks whether it is awaited


@dataclass(frozen=True)
class Cast:
    """Who acts on a request: directory ids of its practitioner, its manager and its recipient."""

    practitioner: str
    manager: str
    recipient: str

    @classmethod
    def of(cls, request: ShareRequest, directory: Directory) -> Cast:
        discloser = directory.agency(request.disclosing_agency)
        if discloser is None or not discloser.managers():
            raise ValueError(f"disclosing_agency {request.disclosing_agency}: no managers in the directory")
        return cls(request.requested_by, discloser.managers()[0].id, request.recipient_agency)


@dataclass(frozen=True)
class Step:
    """One actor's action: the Update it is sent as, the stages at which it is due, and what it says."""

    update: Literal["consent", "override", "decide", "acknowledge"]
    due: tuple[Stage, ...]
    consent: Literal["given", "refused"] = "given"
    decision: Literal["approve", "decline"] = "approve"
    items: tuple[str, ...] | None = None  # approve only these; None: all
    ground: OverrideGround = "would_increase_risk_to_child"
    reason: str = ""
    judgement: str = ""  # a decline's s.16LA judgement

    @property
    def name(self) -> str:
        match self.update:
            case "consent":
                return f"consent_{self.consent}"
            case "decide":
                return "review" if self.due == ("retrospective_review",) else self.decision
        return self.update

    def actor(self, cast: Cast) -> str:
        return {"consent": cast.practitioner, "override": cast.practitioner, "decide": cast.manager,
                "acknowledge": cast.recipient}[self.update]

    def action(self, cast: Cast) -> Action:
        """The action as its actor sends it (unsigned: the driver or the CLI signs it)."""
        by = self.actor(cast)
        match self.update:
            case "consent":
                return ConsentAction(status=self.consent, by=by)
            case "override":
                return OverrideAction(ground=self.ground, reason=self.reason, by=by)
            case "decide":
                items = list(self.items) if self.items is not None else None
                return DecisionAction(decision=self.decision, manager=by, items=items, reason=self.reason,
                                      judgement=self.judgement or None)
        return AckAction(agency=by)

    def argv(self, request_id: str, cast: Cast, settings: Settings) -> list[str]:
        """The same step as its actor types it: `safeshare` arguments, signed with the demo key."""
        by = self.actor(cast)
        key = ["--key", str(settings.contact_key_file(by))]
        match self.update:
            case "consent":
                return ["consent", request_id, f"--{self.consent}", "--by", by, *key]
            case "override":
                return ["override", request_id, "--ground", self.ground, "--reason", self.reason, "--by", by, *key]
            case "decide":
                items = ["--items", ",".join(self.items)] if self.items is not None else []
                items += ["--judgement", self.judgement] if self.judgement else []
                return ["decide", request_id, f"--{self.decision}", "--manager", by, "--reason", self.reason,
                        *items, *key]
        return ["ack", request_id, "--agency", by, "--key", str(settings.agency_key_file(by))]

    def done(self, status: Status) -> bool:
        """Whether the status shows this step taken: a step whose answer was lost is not taken again."""
        match self.update:
            case "consent":
                return status.stage != "intake" and status.consent != "awaited"
            case "override":
                return status.override_ground is not None
            case "decide" if self.name == "review":
                return status.stage not in ("intake", "transmission", "retrospective_review")
            case "decide" if self.decision == "approve":
                return status.approved_items is not None
            case "decide":
                return status.outcome in ("not_shared", "withdrawn")
        return status.acknowledged_at is not None


CONSENT_GIVEN = Step("consent", ("consent",))
CONSENT_REFUSED = Step("consent", ("consent",), consent="refused")
OVERRIDE = Step("override", ("manager_review",), reason="Risk of serious harm outweighs refusal.")
APPROVE = Step("decide", ("manager_review",), reason="Proportionate.")
DECLINE = Step("decide", ("manager_review",), decision="decline",
               reason="Not necessary or proportionate for the stated purpose.",
               judgement="Disclosing the whole pastoral record would harm the child's trust in school, the one "
                         "safe adult setting, more than withholding it would protect them.")
REVIEW = Step("decide", ("retrospective_review",), reason="Immediate risk justified sharing.")
# An emergency share is delivered before its review: the recipient may acknowledge it at once.
ACKNOWLEDGE = Step("acknowledge", ("receipt", "retrospective_review"))

ROUTINE = (CONSENT_GIVEN, APPROVE, ACKNOWLEDGE)
SCRIPTS: dict[str, tuple[Step, ...]] = {  # by example request (examples/requests/NAME.yaml)
    "routine-consent": ROUTINE,
    "emergency-override": (ACKNOWLEDGE, REVIEW),
    "health-special-category": (CONSENT_REFUSED, OVERRIDE, replace(
        APPROVE, items=("camhs-referral", "gp-view"), reason="Only what is needed."), ACKNOWLEDGE),
    "police-inbound-declined": (DECLINE,),
}


def demo_key(settings: Settings, directory: Directory, actor: str) -> crypto.SigningKey:
    """An actor's signing key from the demo home: an agency's (its receipts) or a contact's."""
    if directory.agency(actor) is not None:
        return crypto.SigningKey(crypto.AgencyKeys.load(settings.agency_key_file(actor)).signing)
    return crypto.SigningKey.load(settings.contact_key_file(actor))


def in_stage(*stages: str) -> Callable[[Status], bool]:
    """A condition on a request's status: at one of these stages."""
    return lambda status: status.stage in stages


class Actors:
    """The example requests' actors on one client, each signing with its demo key.

    `act_on` says where a step's being due is read. "stored_stage", the rule for anything that acts
    by itself (docs/VERSIONING.md): the `ShareStage` search attribute, written when the workflow
    task that set it completed, so an Update sent on it lands in a task of its own. "status": the
    status query's answer, which may come from a task still in flight; for the time-skipping
    test server's tests, and the benchmark, whose baseline's actors query too.

    `survive`, when set, is how long any one call may take: a call cut off or failed is tried again
    at the next look, as a person told to act would (the crash test: a worker or the server may die
    under it; an action whose answer was lost is seen done at the next look). Unset, a failure
    fails the step. With `open_bundles` the recipient opens and verifies the sealed bundle before
    acknowledging it. `seen` holds what was last seen of each request, for a failure's report.
    """

    def __init__(
        self, client: SafeshareClient, settings: Settings, *, act_on: ActOn = "stored_stage",
        timeout: float = 60, pace: Pace = ACTING,
        survive: float | None = None, open_bundles: bool = False,
    ) -> None:
        self.client, self.settings, self.act_on = client, settings, act_on
        self.timeout, self.pace, self.survive, self.open_bundles = timeout, pace, survive, open_bundles
        self.seen: dict[str, str] = {}
        self._keys: dict[str, crypto.SigningKey] = {}
        # What a worker or a server dying under a call looks like: not started yet, a query or an
        # update cut off, a workflow task in retry, an action refused in a race with the status.
        self._transient: tuple[type[Exception], ...] = (RPCError, Refused, WorkflowQueryFailedError,
                                                        WorkflowUpdateRPCTimeoutOrCancelledError,
                                                        TimeoutError) if survive is not None else ()

    def key(self, actor: str) -> crypto.SigningKey:
        if actor not in self._keys:
            self._keys[actor] = demo_key(self.settings, self.client.directory, actor)
        return self._keys[actor]

    def cast(self, request: ShareRequest) -> Cast:
        return Cast.of(request, self.client.directory)

    # Hooks for a narrator (`safeshare demo`): each look at a request, each step taken.
    def looked(self, request: ShareRequest, stage: str | None, status: Status) -> None:
        """Called at every look at a request, with the stage acted on and the status."""

    def step_taken(self, request: ShareRequest, step: Step, status: Status) -> None:
        """Called once a step's action is accepted."""

    async def submit(self, request: ShareRequest) -> Submitted:
        """Submit it, signed by its requester's demo key (again, if a call failed: the request id
        makes a second submission a no-op)."""
        key = self.key(request.requested_by)
        return await self._retried(f"request {request.request_id}: submitted",
                                   lambda: self.client.submit(request, key))

    async def take(self, request: ShareRequest, step: Step) -> Status:
        """The step now, signed by its actor's demo key."""
        cast, rid = self.cast(request), request.request_id
        action, by = step.action(cast), step.actor(cast)
        match action:
            case ConsentAction():
                status = await self.client.consent(rid, action, self.key(by))
            case OverrideAction():
                status = await self.client.override(rid, action, self.key(by))
            case DecisionAction():
                status = await self.client.decide(rid, action, self.key(by))
            case AckAction():
                if self.open_bundles:
                    keys = crypto.AgencyKeys.load(self.settings.agency_key_file(by))
                    await open_delivery(self.settings, self.client.directory, rid, by, keys)
                status = await self.client.acknowledge(rid, action, self.key(by))
        self.step_taken(request, step, status)
        return status

    async def drive(self, request: ShareRequest, script: Sequence[Step], until: Stage | None = None) -> Status:
        """Take each step of the script once it is due, unless the request is already at `until`
        (then stop there) or the step is seen done; then wait for `until`, if given. Returns the
        last status seen. Driving again from where a request stands takes up the script there."""
        rid = request.request_id
        status: Status | None = None
        for step in script:

            async def attempt(step: Step = step) -> _Look:
                stage, now = await self._observe(request)
                if stage == until:
                    return _Look(stage, now, "at_until")
                if step.done(now):
                    return _Look(stage, now, "done")
                if stage in step.due:
                    return _Look(stage, await self._call(self.take(request, step)), "done")
                return _Look(stage, now, "waiting")

            look = await self._eventually(f"request {rid}: {step.name}, due at {'/'.join(step.due)}", attempt,
                                          lambda look: look.outcome != "waiting")
            status = look.status
            if look.outcome == "at_until":
                return status
        if until is None:
            assert status is not None, "an empty script and no stage to wait for"
            return status
        look = await self._eventually(f"request {rid}: at {until}", lambda: self._observe(request),
                                      lambda seen: seen[0] == until)
        return look[1]

    async def stage(self, request_id: str) -> str | None:
        """The stage the server holds, as operators filter on it."""
        described = await self.client.handle(request_id).describe()
        return described.typed_search_attributes.get(SearchKey.STAGE)

    async def _observe(self, request: ShareRequest) -> tuple[str | None, Status]:
        rid = request.request_id
        try:
            status = await self._call(self.client.status(rid))
            stage = status.stage if self.act_on == "status" else await self._call(self.stage(rid))
        except self._transient as err:
            self.seen[rid] = f"{type(err).__name__}: {await self._explain(err)}"
            raise
        self.seen[rid] = str(stage)
        self.looked(request, stage, status)
        return stage, status

    async def _call(self, call: Awaitable[T]) -> T:
        """One call: with `survive`, cut off after that long (a call hung on a dead connection)."""
        if self.survive is None:
            return await call
        async with asyncio.timeout(self.survive):
            return await call

    async def _retried(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        if self.survive is None:
            return await call()
        return await self._eventually(what, lambda: self._call(call()), lambda _: True)

    async def _eventually(self, what: str, look: Callable[[], Awaitable[T]], holds: Callable[[T], bool]) -> T:
        return await eventually(what, look, holds, timeout=self.timeout, pace=self.pace, tolerate=self._transient)

    async def _explain(self, err: Exception) -> str:
        """A failed query's message, decoded: like every failure it is encrypted by the codec."""
        cause = err.__cause__ if isinstance(err, WorkflowQueryFailedError) else None
        if isinstance(cause, RPCError) and cause.raw_grpc_status is not None:
            for detail in cause.grpc_status.details:
                failure = QueryFailedFailure()
                if detail.Unpack(failure) and failure.HasField("failure"):
                    decoded = await self.client.client.data_converter.decode_failure(failure.failure)
                    return f"query failed: {decoded}"[:300]
        return str(err)[:100]


@dataclass(frozen=True)
class _Look:
    stage: str | None
    status: Status
    outcome: Literal["at_until", "done", "waiting"]

    def __str__(self) -> str:
        return f"stage {self.stage} ({self.outcome}); status {self.status}"
