"""A worker's observability: Prometheus metrics, OpenTelemetry traces, and the stage census.

- **Metrics**: Temporal's runtime serves one Prometheus endpoint (`SAFESHARE_METRICS_PORT`) with
  the SDK's own metrics (`temporal_*`) and Safeshare's (`safeshare_*`), which activities record
  through Temporal's metric meter (`activities/_metrics.py`) and the census below sets. One port,
  one scrape. Labels hold stages, event names, urgencies, kinds: never personal data.
- **Traces**: Temporal's OpenTelemetry `TracingInterceptor` on the worker's client. It ends each
  workflow span as it is created, so a request parked for years shows its spans at once (the
  newer plugin only emits workflow spans when the workflow completes). Off unless
  `OTEL_TRACES_EXPORTER` or `OTEL_EXPORTER_OTLP_ENDPOINT` says otherwise.
- **Census**: every `SAFESHARE_CENSUS_SECONDS` a worker counts open requests by `ShareStage`, and
  the overdue ones, from Temporal's visibility store. Every worker reports the same numbers;
  dashboards take `max` over workers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

import structlog
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from temporalio.client import Client, Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError

from activities import beside
from clients import Settings
from schemas import STAGES, WORKFLOW_TYPE, SearchKey, visibility_query

log = structlog.get_logger("safeshare.telemetry")

SERVICE = "safeshare-worker"


def worker_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on SAFESHARE_METRICS_PORT, or None (default runtime)."""
    if settings.metrics_port is None:
        return None
    return Runtime(telemetry=TelemetryConfig(
        metrics=PrometheusConfig(bind_address=f"{settings.metrics_host}:{settings.metrics_port}"),
        global_tags={"service": SERVICE},
    ))


def tracer_provider(settings: Settings, exporter: SpanExporter | None = None) -> TracerProvider | None:
    """A tracer provider exporting as OTEL_TRACES_EXPORTER says (the OTLP exporter reads its own
    OTEL_EXPORTER_OTLP_* variables), or `exporter` when given; None when tracing is off."""
    if exporter is None:
        if settings.tracing == "none":
            return None
        if settings.tracing == "console":
            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": SERVICE}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def tracing_interceptors(provider: TracerProvider | None) -> Sequence[Interceptor]:
    if provider is None:
        return ()
    # Workflows are started by the CLI, which does not trace: spans are made in the worker anyway.
    return (TracingInterceptor(provider.get_tracer("safeshare"), always_create_workflow_spans=True),)


async def count_by_stage(client: Client) -> tuple[dict[str, int], int]:
    """Open requests per stage, and how many are overdue, from the search attributes."""
    open_requests = (("WorkflowType", "=", WORKFLOW_TYPE), ("ExecutionStatus", "=", "Running"))
    by_stage = {}
    for stage in STAGES:
        query = visibility_query(*open_requests, (SearchKey.STAGE.name, "=", stage))
        by_stage[stage] = (await client.count_workflows(query)).count
    flagged = visibility_query(*open_requests, (SearchKey.OVERDUE.name, "=", True))
    overdue = (await client.count_workflows(flagged)).count
    return by_stage, overdue


async def run_census(client: Client, every: float) -> None:
    """Set the `safeshare_requests{stage}` and `safeshare_requests_overdue` gauges, every `every` seconds."""
    meter = client.service_client.config.runtime.metric_meter
    requests = meter.create_gauge("safeshare_requests", "Open share requests by stage")
    overdue = meter.create_gauge("safeshare_requests_overdue", "Open share requests flagged overdue")
    while True:
        try:
            by_stage, flagged = await count_by_stage(client)
        except RPCError as err:  # visibility unavailable: keep the last numbers, try again later
            log.warning("census_failed", status=err.status.name)
        except Exception as err:  # a metrics loop must never take the worker down
            log.warning("census_failed", error=type(err).__name__)
        else:
            for stage, n in by_stage.items():
                requests.set(n, {"stage": stage})
            overdue.set(flagged)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def census(client: Client, settings: Settings):
    """Run the census beside a worker whose runtime exports metrics."""
    if settings.metrics_port is None or settings.census_seconds <= 0:
        yield
        return
    async with beside(run_census(client, settings.census_seconds)):
        yield
