"""Every failure as a problem+json answer: what the caller can fix is 4xx naming the field, what
the deployment must fix is 503, and nothing ever reaches the caller or the log as a traceback."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from clients import Conflict, InputError, Refused, Unavailable, describe_errors
from schemas import IntakeError
from store import StoreError

from ._problems import DoorError, invalid, problem

log = structlog.get_logger("safeshare.service")

_UNAVAILABLE = (Unavailable, RPCError, WorkflowUpdateRPCTimeoutOrCancelledError, WorkflowQueryFailedError,
                SQLAlchemyError, StoreError, OSError)


def _where(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # A body's fields are named as in the request file; a query's or header's by its name.
    return loc[1:] if loc and loc[0] == "body" else loc


def install_error_handlers(app: FastAPI) -> None:
    async def door_error(_: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, DoorError)
        return problem(err)

    async def validation(_: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, RequestValidationError)
        errors = [{**e, "loc": _where(tuple(e.get("loc", ())))} for e in err.errors()]
        return problem(invalid(describe_errors(errors)))

    async def refused(_: Request, err: Exception) -> JSONResponse:
        kind = "conflict" if isinstance(err, Conflict) else "refused"
        # The message names the rule and ids only (workflows/_rules.py, clients/_client.py).
        return problem(DoorError(409, kind, "Refused", str(err)))

    async def bad_input(_: Request, err: Exception) -> JSONResponse:
        if isinstance(err, IntakeError):
            return problem(invalid([str(err)], "The request cannot start"))
        assert isinstance(err, InputError)
        return problem(invalid(err.problems))

    async def unavailable(_: Request, err: Exception) -> JSONResponse:
        log.warning("service_unavailable", error=type(err).__name__)
        return problem(DoorError(503, "unavailable", "Unavailable", "the service cannot reach Temporal or its "
                                 "database now; try again shortly", headers={"Retry-After": "5"}))

    async def http_error(_: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, HTTPException)
        title = {404: "Not found", 405: "Method not allowed"}.get(err.status_code, "Refused")
        detail = {404: "path: not a Safeshare endpoint", 405: "method: not allowed on this path"}.get(
            err.status_code, "the request cannot be served")
        return problem(DoorError(err.status_code, "http", title, detail, headers=dict(err.headers or {})))

    app.add_exception_handler(DoorError, door_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(Refused, refused)
    app.add_exception_handler(IntakeError, bad_input)
    app.add_exception_handler(InputError, bad_input)
    for kind in _UNAVAILABLE:
        app.add_exception_handler(kind, unavailable)
    app.add_exception_handler(HTTPException, http_error)

    @app.middleware("http")
    async def shield(request: Request, call_next: Any) -> Any:
        """The last line: an unexpected failure is one line in the log (its type) and a 500
        problem, never a traceback, whose frames may hold personal data."""
        try:
            return await call_next(request)
        except Exception as err:
            log.error("service_internal_error", error=type(err).__name__)
            return problem(DoorError(500, "internal", "Internal error",
                                   f"internal error ({type(err).__name__}); nothing more was done"))
