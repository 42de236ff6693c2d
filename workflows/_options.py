"""How the workflow's activities time out and retry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio.common import RetryPolicy

# Retried without limit (backing off to a minute): a store outage makes the request wait, never
# fail; what retrying cannot fix the activity raises non-retryable. Each is a few statements or one
# sealing; the timeout is how long an attempt lost with a crashed worker holds the request.
STEP: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=15),
    "retry_policy": RetryPolicy(maximum_interval=timedelta(minutes=1)),
}
# About half an hour of retries, then the step is recorded as not notified and the request goes
# on: a mail outage must not hold a safeguarding decision.
NOTIFY: dict[str, Any] = {
    "start_to_close_timeout": timedelta(seconds=30),
    "retry_policy": RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=10),
                                maximum_attempts=12),
}
# A webhook push retries without limit, like the store; its heartbeat lets a worker that dies
# mid-send be noticed in seconds, and the retry (same Idempotency-Key) go to another worker.
PUSH: dict[str, Any] = {**STEP, "heartbeat_timeout": timedelta(seconds=10)}
