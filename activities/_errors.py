"""Store failures at the Temporal boundary: what retrying can fix, and what it cannot.

A database that is down, locked or dropping connections comes back: the activity fails
retryably and the request waits (the workflow's retry policy has no attempt limit). A statement
the database refuses (a constraint, a missing table, a value it will not take) fails the same way
every time: the activity fails non-retryably, at once, so an operator sees it (the workflow fails
with `StoreError`; after the fix, Temporal's reset resumes it). Either way the failure says what
kind of error it was and nothing else: a driver's message can quote the statement's parameters.
Content destroyed at retention expiry does not come back either: a step that needs it fails at
once (`ContentDestroyed`), saying so.
"""

from __future__ import annotations

from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError, SQLAlchemyError
from temporalio.exceptions import ApplicationError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from store import ContentDestroyed

log = structlog.get_logger("safeshare.activities")

_PERMANENT = (IntegrityError, DataError, ProgrammingError)


class StoreFailures(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _StoreFailuresInbound(next)


class _StoreFailuresInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except ContentDestroyed as err:
            raise ApplicationError(str(err), type="ContentDestroyed", non_retryable=True) from None
        except ValidationError as err:
            # A stored model that no longer validates: retrying cannot fix it, and pydantic's own
            # message quotes the input (a name, content), so only the fields' places are named.
            where = sorted({".".join(str(p) for p in e["loc"]) or "model" for e in err.errors(include_input=False)})
            log.error("stored_model_invalid", model=err.title, fields=where)
            raise ApplicationError(f"{err.title} no longer validates at {', '.join(where)}; see the worker log",
                                   type="InvalidModel", non_retryable=True) from None
        except _PERMANENT as err:
            kind = type(err).__name__
            log.error("store_refused", kind=kind)
            raise ApplicationError(
                f"the store refused this step ({kind}); retrying cannot fix it: see the worker log",
                type="StoreError", non_retryable=True,
            ) from None
        except SQLAlchemyError as err:  # a connection lost, a lock, a timeout: it comes back
            kind = type(err).__name__
            log.warning("store_unavailable", kind=kind)
            raise ApplicationError(f"the store is unavailable ({kind}); retrying", type="StoreUnavailable") from None
