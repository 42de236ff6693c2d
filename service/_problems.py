"""Errors at the door as RFC 9457 problem details (`application/problem+json`): a type, a title,
the status, a detail naming the field and what is expected, and each failing field; never a
value the caller sent, which may be personal data."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

MEDIA_TYPE = "application/problem+json"


class FieldProblem(BaseModel, frozen=True):
    field: str = Field(description="Where: a field path, a query parameter or a header")
    detail: str = Field(description="What is expected there")


class Problem(BaseModel, frozen=True):
    """An RFC 9457 problem details object."""

    type: str = Field(description="A URI naming the kind of problem")
    title: str
    status: int
    detail: str
    errors: list[FieldProblem] = Field(default_factory=list, description="Each failing field")


class DoorError(Exception):
    """A refusal the handlers raise; the app turns it into its problem response."""

    def __init__(self, status: int, kind: str, title: str, detail: str, headers: dict[str, str] | None = None,
                 errors: list[FieldProblem] | None = None) -> None:
        super().__init__(detail)
        self.status, self.kind, self.title, self.detail = status, kind, title, detail
        self.headers, self.errors = headers or {}, errors or []


def problem(err: DoorError) -> JSONResponse:
    body = Problem(type=f"urn:safeshare:problem:{err.kind}", title=err.title, status=err.status,
                   detail=err.detail, errors=err.errors)
    return JSONResponse(body.model_dump(), status_code=err.status, media_type=MEDIA_TYPE,
                        headers={"Cache-Control": "no-store", **err.headers})


def invalid(problems: list[str], title: str = "The request is not valid") -> DoorError:
    """422 from "field: expected" lines (the CLI's rendering of pydantic's errors)."""
    errors = [FieldProblem(field=f, detail=d.strip()) for f, _, d in (p.partition(": ") for p in problems)]
    return DoorError(422, "invalid", title, "; ".join(problems), errors=errors)


def unauthorised() -> DoorError:
    # One answer for every kind of bad credential: which check failed is for the audit log.
    return DoorError(401, "unauthorised", "Not authenticated",
                     "Authorization: a bearer token (RFC 7523 JWT, EdDSA) signed by your own key is expected",
                     headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


def not_found(detail: str) -> DoorError:
    return DoorError(404, "not_found", "Not found", detail)


def forbidden(detail: str) -> DoorError:
    return DoorError(403, "forbidden", "Not allowed for your role", detail)


RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": description, "content": {MEDIA_TYPE: {}}}
    for status, description in {
        401: "No valid credential", 403: "Your role may not take this action",
        404: "No such request, or not yours", 409: "Refused by the process's rules, or a conflict",
        413: "Body too large", 422: "Invalid input", 429: "Too many calls", 503: "A dependency is unavailable",
    }.items()
}
