"""The endpoints. Each authenticates (the `Caller` dependency), authorises (the door's guard,
reading the one table in `_access.py`), calls the one client or store method that does the
work, and shapes the answer; the process stays in the workflow."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, FastAPI, Header, Path, Query, Request, Response
from pydantic import BaseModel, Field

from clients import export_row, export_window, full_record
from schemas import (
    STAGES,
    AckAction,
    ChallengeAction,
    ConsentAction,
    DecisionAction,
    DecisionRecord,
    HoldAction,
    OverrideAction,
    RequestId,
    ShareRequest,
    Status,
)

from ._access import Action, Scope, rule
from ._door import Caller, Door, DoorDep, route_of
from ._errors import install_error_handlers
from ._limits import BodyLimit
from ._problems import RESPONSES, DoorError, forbidden, not_found

log = structlog.get_logger("safeshare.service")

RequestIdPath = Annotated[RequestId, Path(description="The request id (never personal data)")]
IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", pattern=r"^[A-Za-z0-9._:-]{1,100}$",
    description="Repeat an action safely: a second call with the same key is answered with the first's outcome")]


class Submitted(BaseModel, frozen=True):
    request_id: RequestId
    already_existed: bool = Field(description="True when this request was submitted before, unchanged")


router = APIRouter(prefix="/v1", responses=RESPONSES)


@router.post("/requests", status_code=201, response_model=Submitted, tags=["practitioner", "agency"])
async def submit(request: ShareRequest, http: Request, response: Response, who: Caller, door: DoorDep) -> Submitted:
    """Submit a request for your own agency: validated, checked against the directory, started once
    (the request id is the idempotency key)."""
    door.allowed(who, Action.SUBMIT, route_of(http))
    requester = request.disclosing_agency if request.direction == "outbound" else request.recipient_agency
    if requester != who.agency:
        raise forbidden("disclosing_agency/recipient_agency: your own agency must be the requester")
    if who.id != who.agency:  # a person submits as themself; an agency's system for its practitioners
        door.acting_as(who, "requested_by", request.requested_by, route_of(http))
    result = await door.client.submit(request)
    response.headers["Location"] = f"/v1/requests/{result.request_id}"
    if result.already_existed:
        response.status_code = 200
    return Submitted(request_id=result.request_id, already_existed=result.already_existed)


@router.get("/requests", tags=["operator"])
async def list_requests(
    http: Request, who: Caller, door: DoorDep,
    stage: Annotated[str | None, Query(description=f"One of {', '.join(STAGES)}")] = None,
    overdue: Annotated[bool | None, Query(description="Only overdue requests (true) or only others")] = None,
) -> list[dict[str, Any]]:
    """Requests as operators see them, each once: ids, stages and agencies, never content."""
    door.allowed(who, Action.LIST, route_of(http))
    return await door.client.list(stage=stage, overdue=overdue)


@router.get("/requests/{request_id}", tags=["practitioner", "manager", "operator", "agency"])
async def status(request_id: RequestIdPath, http: Request, who: Caller, door: DoorDep) -> Status:
    """Stage, what is awaited from whom, and by when."""
    await door.guard(who, Action.STATUS, request_id, route_of(http))
    return await door.client.status(request_id)


@router.get("/requests/{request_id}/record", tags=["dpo", "practitioner", "manager"])
async def record(request_id: RequestIdPath, http: Request, who: Caller, door: DoorDep) -> dict[str, Any]:
    """The request's full trail: decision record, reasons checked against their hashes, audit
    entries with their notes, notifications."""
    await door.guard(who, Action.RECORD, request_id, route_of(http))
    found = await full_record(door.store, request_id)
    if found is None:
        raise not_found(f"request {request_id}: no record yet")
    return found


@router.post("/requests/{request_id}/consent", tags=["practitioner"])
async def consent(request_id: RequestIdPath, action: ConsentAction, http: Request, who: Caller, door: DoorDep,
                  idempotency_key: IdempotencyKey = None) -> Status:
    """Record the family's answer to the request for consent."""
    await door.guard(who, Action.CONSENT, request_id, route_of(http))
    door.acting_as(who, "by", action.by, route_of(http))
    return await door.client.consent(request_id, action, update_id=door.update_id(who, Action.CONSENT,
                                                                                  idempotency_key))


@router.post("/requests/{request_id}/override", tags=["practitioner"])
async def override(request_id: RequestIdPath, action: OverrideAction, http: Request, who: Caller, door: DoorDep,
                   idempotency_key: IdempotencyKey = None) -> Status:
    """Record a safeguarding override of consent, signed by you (the body carries your signature)."""
    await door.guard(who, Action.OVERRIDE, request_id, route_of(http))
    door.acting_as(who, "by", action.by, route_of(http))
    return await door.client.override(request_id, action, update_id=door.update_id(who, Action.OVERRIDE,
                                                                                    idempotency_key))


@router.post("/requests/{request_id}/challenge", tags=["practitioner"])
async def challenge(request_id: RequestIdPath, action: ChallengeAction, http: Request, who: Caller,
                    door: DoorDep, idempotency_key: IdempotencyKey = None) -> Status:
    """Record the subject's challenge; the discloser's manager and DPO are notified."""
    await door.guard(who, Action.CHALLENGE, request_id, route_of(http))
    door.acting_as(who, "by", action.by, route_of(http))
    return await door.client.challenge(request_id, action, update_id=door.update_id(who, Action.CHALLENGE,
                                                                                    idempotency_key))


@router.post("/requests/{request_id}/decision", tags=["manager"])
async def decide(request_id: RequestIdPath, action: DecisionAction, http: Request, who: Caller, door: DoorDep,
                 idempotency_key: IdempotencyKey = None) -> Status:
    """Approve (optionally only some items), decline or comment, signed by you."""
    await door.guard(who, Action.DECIDE, request_id, route_of(http))
    door.acting_as(who, "manager", action.manager, route_of(http))
    return await door.client.decide(request_id, action, update_id=door.update_id(who, Action.DECIDE,
                                                                                idempotency_key))


@router.post("/requests/{request_id}/legal-hold", tags=["operator", "dpo", "manager"])
async def hold(request_id: RequestIdPath, action: HoldAction, http: Request, who: Caller, door: DoorDep,
               idempotency_key: IdempotencyKey = None) -> Status:
    """Place (hold: true) or release (hold: false) a legal hold; deletion waits while it is held."""
    await door.guard(who, Action.HOLD, request_id, route_of(http))
    door.acting_as(who, "by", action.by, route_of(http))
    return await door.client.hold(request_id, action, update_id=door.update_id(who, Action.HOLD, idempotency_key))


@router.post("/requests/{request_id}/acknowledgement", tags=["recipient"])
async def acknowledge(request_id: RequestIdPath, action: AckAction, http: Request, who: Caller, door: DoorDep,
                      idempotency_key: IdempotencyKey = None) -> Status:
    """Acknowledge receipt of the bundle, signed with your agency's key."""
    await door.guard(who, Action.ACKNOWLEDGE, request_id, route_of(http))
    if action.agency != who.agency:
        raise forbidden("agency: must be your own agency")
    return await door.client.acknowledge(request_id, action, update_id=door.update_id(who, Action.ACKNOWLEDGE,
                                                                                      idempotency_key))


@router.get("/requests/{request_id}/bundle", tags=["recipient"],
            responses={200: {"content": {"application/octet-stream": {}}, "description": "The sealed bundle"}})
async def bundle(request_id: RequestIdPath, http: Request, who: Caller, door: DoorDep) -> Response:
    """The sealed, sender-signed bundle, as delivered: only the recipient's private key opens it."""
    await door.guard(who, Action.BUNDLE, request_id, route_of(http))
    delivery = await door.store.delivery(request_id)
    if delivery is None or delivery.recipient != who.agency:
        raise not_found(f"request {request_id}: no bundle delivered")
    if delivery.bundle is None:
        raise DoorError(410, "destroyed", "Destroyed", f"request {request_id}: bundle destroyed at retention expiry")
    return Response(delivery.bundle, media_type="application/octet-stream", headers={
        "X-Safeshare-Sender": delivery.sender, "X-Safeshare-Bundle-SHA256": delivery.bundle_sha256})


@router.get("/inbox", tags=["recipient"])
async def inbox(http: Request, who: Caller, door: DoorDep) -> list[dict[str, Any]]:
    """The bundles delivered to your agency (what, from whom, when; never the bundle itself)."""
    door.allowed(who, Action.INBOX, route_of(http))
    rows = await door.store.inbox_for(who.agency or "")
    return [{"request_id": r.request_id, "sender": r.sender, "bundle_sha256": r.bundle_sha256,
             "delivered_at": r.delivered_at, "acknowledged_at": r.acknowledged_at, "destroyed_at": r.destroyed_at}
            for r in rows]


@router.get("/records", tags=["dpo"])
async def export(
    http: Request, who: Caller, door: DoorDep,
    start: Annotated[str, Query(alias="from", description="First day (YYYY-MM-DD, UTC) a request was accepted")],
    end: Annotated[str, Query(alias="to", description="Last day (YYYY-MM-DD, UTC), included")],
) -> list[dict[str, Any]]:
    """Decision records of the requests accepted in a period, with an ICO data-sharing record's
    fields: your own agency's (as discloser or recipient), or every agency's for a partnership DPO."""
    door.allowed(who, Action.EXPORT, route_of(http))
    window = export_window(start, end, ("from", "to"))
    everyone = rule(who, Action.EXPORT) == Scope.ALL
    rows = [export_row(DecisionRecord.model_validate_json(r.body), r.accepted_at)
            for r in await door.store.records_accepted(*window)]
    return [r for r in rows if everyone or who.agency in (r["disclosing_agency"], r["recipient_agency"])]


@router.get("/audit/verify", tags=["dpo"])
async def audit_verify(http: Request, who: Caller, door: DoorDep) -> dict[str, Any]:
    """Recompute the audit chain and check its signed checkpoints with the deployment's public key."""
    door.allowed(who, Action.AUDIT_VERIFY, route_of(http))
    report = await door.store.verify_audit(door.audit_public_key)
    return {"ok": report.ok, "entries": report.entries, "checkpoints": report.checkpoints,
            "head_seq": report.head_seq, "first_bad_seq": report.first_bad_seq, "problems": report.problems}


def create_app(open_door: Callable[[], AbstractAsyncContextManager[Door]], max_body: int) -> Any:
    """The service as an ASGI app: `open_door` opens what it talks to for the app's lifetime."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        async with open_door() as the_door:
            app.state.door = the_door
            log.info("service_ready")
            try:
                yield
            finally:
                await the_door.drain()

    app = FastAPI(title="Safeshare", version="1", lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="The one door for every actor: agencies' systems, practitioners, managers, DPOs, "
                  "recipient inboxes and operators, each authenticated by their own key.")
    app.include_router(router)

    @app.get("/health", include_in_schema=False)
    async def health() -> dict[str, bool]:
        return {"ok": True}

    install_error_handlers(app)
    return BodyLimit(app, max_body)
