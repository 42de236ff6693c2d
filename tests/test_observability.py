"""Operators' view of the workers: Prometheus metrics (Temporal's and Safeshare's) scraped from a
running worker, and OpenTelemetry spans for a request, none of them carrying personal data."""

from __future__ import annotations

import asyncio
import re
import socket
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import get_args

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from structlog.contextvars import merge_contextvars
from structlog.testing import capture_logs
from temporalio.runtime import Runtime
from temporalio.testing import WorkflowEnvironment

import crypto
from clients import Settings, connect
from schemas import DecisionAction, ShareRequest, Urgency
from schemas._common import Direction
from workers import ROUTINE
from workers._telemetry import SERVICE, tracer_provider, tracing_interceptors, worker_runtime

from .conftest import Stack, open_stack

TWO_DAYS = timedelta(days=2, minutes=1)
SNAKE = re.compile(r"^[a-z][a-z0-9_]*$")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Observed:
    runtime: Runtime
    port: int
    spans: InMemorySpanExporter
    tracing: TracerProvider


@pytest.fixture(scope="session")
def observed() -> Observed:
    """One runtime serving Prometheus for the session (its port is bound for the process's life),
    and a tracer provider with an in-memory exporter, made by the worker's own functions."""
    port = free_port()
    settings = Settings.from_env({"SAFESHARE_METRICS_PORT": str(port), "OTEL_TRACES_EXPORTER": "console"})
    runtime = worker_runtime(settings)
    spans = InMemorySpanExporter()
    provider = tracer_provider(settings, exporter=spans)
    assert runtime is not None and provider is not None
    return Observed(runtime, port, spans, provider)


@pytest.fixture
async def observed_stack(env: WorkflowEnvironment, settings: Settings, observed: Observed) -> AsyncIterator[Stack]:
    """A worker connected as `safeshare worker` connects: envconfig settings, its runtime, tracing.
    The census is off: the time-skipping server has no visibility queries (the dev-server test
    covers it)."""
    worker_settings = settings.model_copy(update={
        "temporal_address": env.client.service_client.config.target_host, "namespace": env.client.namespace,
        "metrics_port": observed.port, "census_seconds": 0,
    })

    async def connect_observed(codec: crypto.EncryptionCodec):
        return await connect(worker_settings, codec, runtime=observed.runtime,
                             interceptors=tracing_interceptors(observed.tracing))

    async with open_stack(env, worker_settings, connect_observed) as stack:
        yield stack


def personal_data(req: ShareRequest) -> list[str]:
    return [req.subject.name, req.subject.date_of_birth.isoformat(),
            *(t.name for t in req.third_parties), *(i.content[:40] for i in req.items)]


async def to_manager_review(stack: Stack) -> ShareRequest:
    """A routine request, submitted and consented to: now awaiting its tier-1 manager."""
    return await stack.routine("manager_review")


async def scrape(port: int) -> str:
    url = f"http://127.0.0.1:{port}/metrics"
    return (await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())).decode()


async def test_worker_metrics_show_the_request_by_stage_escalation_delivery_and_deletion(
    observed_stack: Stack, observed: Observed
) -> None:
    """Operators scrape a worker: Temporal's metrics and Safeshare's, labelled with stages, events,
    kinds and the task queue, never a name, a date of birth or content (security model)."""
    stack = observed_stack
    req = await to_manager_review(stack)
    rid = req.request_id
    await stack.env.sleep(TWO_DAYS)  # tier 1 is silent: escalated to tier 2
    await stack.until(rid, lambda s: s.escalation_tier == 2)
    await stack.client.decide(rid, DecisionAction(decision="approve", manager="np-head", reason="ok"))
    await stack.actors.drive(req, ROUTINE, "retention")  # the recipient acknowledges
    assert (await stack.run_to_end(rid)).stage == "deleted"

    body = await scrape(observed.port)
    samples = [s for family in text_string_to_metric_families(body) for s in family.samples]
    ours = [s for s in samples if s.labels.get("task_queue") == stack.client.task_queue]

    def count(name: str, **labels: str) -> float:
        return sum(s.value for s in ours if s.name in (name, f"{name}_total")
                   and labels.items() <= s.labels.items())

    assert count("safeshare_requests_accepted", urgency=req.urgency, direction=req.direction) == 1
    assert count("safeshare_escalations", kind="manager") == 1
    assert count("safeshare_deliveries") == 1
    assert count("safeshare_deletions") == 1
    assert count("safeshare_events", event="manager_escalated") == 1
    assert count("safeshare_events", event="bundle_acknowledged") == 1
    # Temporal's own metrics, from the same endpoint and the same worker.
    assert count("temporal_workflow_completed", workflow_type="ShareRequest") >= 1
    assert count("temporal_activity_execution_latency_count", activity_type="seal_and_deliver") >= 1
    assert {s.labels.get("service") for s in ours} == {SERVICE}

    # Label values are from fixed sets, never per request; no personal data anywhere in the body.
    values = {k: {s.labels[k] for s in ours if s.name.startswith("safeshare_") and k in s.labels}
              for k in ("event", "kind", "urgency", "direction", "hpke_suite")}
    assert values["event"] and all(SNAKE.match(e) for e in values["event"])
    assert values["kind"] <= {"manager", "receipt", "decision"}
    assert values["urgency"] <= set(get_args(Urgency)) and values["direction"] <= set(get_args(Direction))
    assert values["hpke_suite"] <= {"X25519", "MLKEM768_X25519"}
    assert rid not in body
    for secret in personal_data(req):
        assert secret not in body


async def test_a_request_is_traced_through_workflow_activities_and_updates(
    observed_stack: Stack, observed: Observed
) -> None:
    """Each step of a request is a span in one trace (started by the client), with ids only; every
    log line an activity writes names the request, the activity and the attempt."""
    stack = observed_stack
    with capture_logs(processors=[merge_contextvars]) as logs:
        req = await to_manager_review(stack)
    rid = req.request_id
    from_activities = [e for e in logs if "activity" in e]
    assert {e["event"] for e in from_activities} >= {"request_stored", "consent_requested", "manager_asked"}
    assert all(e["request_id"] == rid and e["attempt"] == 1 for e in from_activities)
    observed.tracing.force_flush()

    spans: list[ReadableSpan] = [
        s for s in observed.spans.get_finished_spans()
        if (s.attributes or {}).get("temporalWorkflowID") == f"share-{rid}"
    ]
    names = {s.name for s in spans}
    assert {"StartWorkflow:ShareRequest", "RunWorkflow:ShareRequest", "StartActivity:accept_request",
            "RunActivity:accept_request", "RunActivity:record_steps", "StartWorkflowUpdate:record_consent",
            "HandleUpdate:record_consent"} <= names, names
    # The worker's spans hang off the client's StartWorkflow span: one trace per request (queries
    # and update calls from other processes start traces of their own).
    (start,) = [s for s in spans if s.name == "StartWorkflow:ShareRequest"]
    worker_side = [s for s in spans if s.name.split(":")[0] in
                   ("RunWorkflow", "StartActivity", "RunActivity", "ValidateUpdate", "HandleUpdate")]
    assert {s.context.trace_id for s in worker_side} == {start.context.trace_id}
    by_id = {s.context.span_id: s for s in spans}
    for run in (s for s in spans if s.name.startswith("RunActivity:")):
        assert by_id[run.parent.span_id].name == run.name.replace("Run", "Start")
    rendered = " ".join(f"{s.name} {dict(s.attributes or {})} {s.events}" for s in spans)
    for secret in personal_data(req):
        assert secret not in rendered


def test_tracing_is_off_by_default_and_follows_the_otel_variables() -> None:
    """No exporter unless an operator asks for one: spans leave the worker only where configured."""
    assert tracer_provider(Settings.from_env({})) is None
    assert tracing_interceptors(None) == ()
    for env in ({"OTEL_TRACES_EXPORTER": "console"}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}):
        provider = tracer_provider(Settings.from_env(env))
        assert provider is not None and len(tracing_interceptors(provider)) == 1
        provider.shutdown()
