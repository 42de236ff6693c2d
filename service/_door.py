"""What every handler shares: the deployment's clients, the guard, and the audit of refusals."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated

import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.service import RPCError, RPCStatusCode

from clients import SafeshareClient
from schemas import Directory, SearchKey
from store import Store

from ._access import Action, Facts, Forbidden, NotYours, Principal, check, rule
from ._identity import Unauthenticated, authenticate
from ._limits import RateLimit
from ._problems import DoorError, forbidden, not_found, unauthorised

log = structlog.get_logger("safeshare.service")

# Where refusals at the door go in the audit chain: never a request id (ids start [a-z0-9]).
DOOR = "(service)"
RETRY_SECONDS = (0.5, 1, 2, 4, 8, 15, 30)  # a store that is briefly down still gets the entry


@dataclass
class Door:
    client: SafeshareClient
    store: Store
    directory: Directory
    audience: str
    limiter: RateLimit
    audit_public_key: str | None = None
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _pending: set[asyncio.Task[None]] = field(default_factory=set)

    async def guard(self, who: Principal, action: Action, request_id: str, route: str) -> Facts:
        """403 if the role may never take the action; 404 if the request is not the caller's or
        does not exist (the same answer, so that existence is not revealed)."""
        try:
            rule(who, action)
            facts = await self.facts(request_id)
            if facts is None:
                raise NotYours(f"request {request_id}: not found")
            check(who, action, facts, self.directory)
        except Forbidden as refusal:
            self.audit_refusal(who.id, "forbidden", route)
            raise forbidden(str(refusal)) from None
        except NotYours as refusal:
            self.audit_refusal(who.id, "not_found", route)
            raise not_found(str(refusal)) from None
        return facts

    def allowed(self, who: Principal, action: Action, route: str) -> None:
        """The guard for an action on no single request: the role's rule, or 403."""
        try:
            rule(who, action)
        except Forbidden as refusal:
            self.audit_refusal(who.id, "forbidden", route)
            raise forbidden(str(refusal)) from None

    def acting_as(self, who: Principal, field_name: str, named: str | None, route: str) -> None:
        """An action names who takes it (and signs it): only the caller themself."""
        if named != who.id:
            self.audit_refusal(who.id, "not_the_caller", route)
            raise forbidden(f"{field_name}: must name you, the authenticated caller")

    async def facts(self, request_id: str) -> Facts | None:
        """Who is party to a request, from its search attributes and memo (no worker asked)."""
        try:
            described = await self.client.handle(request_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        attrs = described.typed_search_attributes
        disclosing, recipient = attrs.get(SearchKey.DISCLOSING), attrs.get(SearchKey.RECIPIENT)
        if disclosing is None or recipient is None:
            return None  # not a share request's workflow
        memo = await described.memo_value("safeshare", default={})
        direction = memo.get("direction", "outbound") if isinstance(memo, dict) else "outbound"
        return Facts(request_id, disclosing, recipient, direction)

    def update_id(self, who: Principal, action: Action, key: str | None) -> str | None:
        """An Idempotency-Key as the Temporal update id: the caller's own, per action."""
        return None if key is None else f"{action.value}:{who.id}:{key}"

    def audit_refusal(self, actor: str | None, reason: str, route: str) -> None:
        """Append the refused attempt to the audit chain, retrying while the store is down, without
        holding up the answer to the caller."""
        task = asyncio.get_running_loop().create_task(self._record(actor or "unknown", reason, route))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _record(self, actor: str, reason: str, route: str) -> None:
        step = f"refused-{uuid.uuid4().hex}"
        for attempt, wait in enumerate((*RETRY_SECONDS, None)):
            now = self.now()
            try:
                await self.store.record_step(request_id=DOOR, step=step, event="access_refused", actor=actor,
                                             at=now, data={"reason": reason, "route": route}, note=None,
                                             notices=[], now=now)
                break
            except Exception:  # the store is down: the step id keeps a retry from appending twice
                log.warning("refusal_not_recorded", reason=reason, attempt=attempt)
                if wait is None:
                    return
                await asyncio.sleep(wait)
        log.info("access_refused", actor=actor, reason=reason, route=route)

    async def drain(self, timeout: float = 5) -> None:
        """Let the refusals still being recorded finish (at shutdown)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)


_bearer = HTTPBearer(auto_error=False, bearerFormat="JWT",
                     description="A JWT per RFC 7523 signed EdDSA by your own key: iss/sub you, aud this "
                     "deployment, exp within 5 minutes, a jti used once")


def door(request: Request) -> Door:
    return request.app.state.door


def route_of(request: Request) -> str:
    route = request.scope.get("route")
    return getattr(route, "path", "unknown")


async def caller(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The authenticated caller (401 otherwise, audited), within its rate limit (429)."""
    the_door = door(request)
    authorization = f"Bearer {credentials.credentials}" if credentials is not None else None
    try:
        who = await authenticate(authorization, the_door.directory, the_door.store, the_door.audience,
                                 the_door.now())
    except Unauthenticated as err:
        the_door.audit_refusal(err.claimed, f"token_{err.reason}", route_of(request))
        raise unauthorised() from None
    the_door.limiter.take(who.id)
    return who


DoorDep = Annotated[Door, Depends(door)]
Caller = Annotated[Principal, Depends(caller)]
__all__ = ["Caller", "Door", "DoorDep", "DoorError", "caller", "route_of"]
