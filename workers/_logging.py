"""One structlog processor chain: console on a terminal, JSON lines otherwise."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from temporalio import activity
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from schemas import request_id_of


def configure_logging(level: int = logging.INFO) -> None:
    renderer = (
        structlog.dev.ConsoleRenderer() if sys.stderr.isatty() else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


class BindActivityContext(Interceptor):
    """Every log line an activity writes carries the request id, the activity and the attempt.

    The request id is the workflow id without its `share-` prefix: chosen by the agency, free of
    personal data by the schema's rule. Nothing else about the request is bound.
    """

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindingInbound(next)


class _BindingInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        with structlog.contextvars.bound_contextvars(
            request_id=request_id_of(info.workflow_id) if info.workflow_id else None,
            activity=info.activity_type, attempt=info.attempt,
        ):
            return await super().execute_activity(input)
