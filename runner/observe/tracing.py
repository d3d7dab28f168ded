"""OpenTelemetry traces, when OpenTelemetry's own environment variables ask for them.

``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, or
``OTEL_TRACES_EXPORTER=otlp``) turns them on; ``OTEL_TRACES_EXPORTER=none``
keeps them off. The SDK reads the rest itself (headers, timeouts, batch sizes,
``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``). Spans are exported over
OTLP/HTTP by a batch processor on its own thread, so an unreachable collector
costs callers nothing; its export failures are logged once.

Without them, the SDK is never imported, and every hook below is a check of
one module global.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)
tracer: Any = None
"""The runner's tracer once :func:`configure` has turned tracing on, else None."""
_propagator: Any = None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or any(
        environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on if the environment asks; True when it is on. Once per process."""
    global tracer, _propagator
    if tracer is not None or not wanted(environ):
        return tracer is not None
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    service = {"service.name": environ.get("OTEL_SERVICE_NAME") or "runner"}
    provider = TracerProvider(resource=Resource.create(service))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    for name in ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                 "opentelemetry.sdk.trace.export"):  # fmt: skip
        logging.getLogger(name).addFilter(_Once())
    tracer = trace.get_tracer("runner")
    _propagator = TraceContextTextMapPropagator()
    log.info("exporting traces over OTLP/HTTP (OpenTelemetry's OTEL_* variables)")
    return True


class _Once(logging.Filter):
    """Lets the first warning or error of a logger through, and no more: a collector that
    is down would otherwise be reported on every batch."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = False

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        if self.seen:
            return False
        self.seen = True
        record.msg = f"{record.getMessage()} (further export failures are not logged)"
        record.args = ()
        return True


def server_span(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Any:
    """The span of one request, continuing the caller's ``traceparent``; None when off."""
    from opentelemetry.trace import SpanKind

    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in (b"traceparent", b"tracestate")
    }
    parent = _propagator.extract(carrier) if carrier else None
    return tracer.start_span(
        f"{method} {path}",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
    )


@contextmanager
def current(span: Any) -> Iterator[None]:
    """``span`` as the active span inside the block (for child spans and propagation)."""
    from opentelemetry import context, trace

    token = context.attach(trace.set_span_in_context(span))
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def child(name: str, client: bool = False, **attributes: Any) -> Iterator[Any]:
    """A child span of the active one, active inside the block; nothing when off."""
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    kind = SpanKind.CLIENT if client else SpanKind.INTERNAL
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
        yield span


def finish_server_span(span: Any, record: Any) -> None:
    """End a request's span with what its record says (GenAI semantic conventions, and
    the runner's own names under ``runner.``)."""
    from opentelemetry.trace import Status, StatusCode

    route = record.route
    if route:
        span.update_name(f"{record.method} {route}")
    found = {
        "http.route": route,
        "http.response.status_code": record.status,
        "runner.request_id": record.request_id,
        "runner.alias": record.alias,
        "runner.integration": record.integration,
        "runner.backend": record.backend,
        "runner.error.category": record.error_type,
        "runner.error.code": record.error_code,
        "runner.attempts": len(record.attempts) or None,
        "gen_ai.operation.name": _OPERATIONS.get(record.operation or ""),
        "gen_ai.system": record.system,
        "gen_ai.request.model": record.alias,
        "gen_ai.response.model": record.upstream_model,
        "gen_ai.usage.input_tokens": record.tokens_in,
        "gen_ai.usage.output_tokens": record.tokens_out,
    }
    span.set_attributes({k: v for k, v in found.items() if v is not None})
    if record.error_type or record.status >= 500:
        span.set_status(Status(StatusCode.ERROR, record.error_code or str(record.status)))
    span.end(end_time=None)


_OPERATIONS = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
    "rerank": "rerank",
}


async def traced_attempt(attempt: Any, number: int) -> Any:
    """``await attempt()`` inside a client span: one per upstream (or handler) attempt,
    active while it runs, so a handler's own spans are its children."""
    from opentelemetry.trace import SpanKind, Status, StatusCode

    with tracer.start_as_current_span(
        "upstream attempt",
        kind=SpanKind.CLIENT,
        attributes={"runner.attempt": number},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            return await attempt()
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, getattr(exc, "code", None) or "failed"))
            span.set_attribute("error.type", getattr(exc, "type", type(exc).__name__))
            raise


def waited(name: str, seconds: float, **attributes: Any) -> None:
    """A child span of the active one for a wait that has just ended (``seconds`` long),
    made afterwards, so nothing is opened while there is nothing to wait for."""
    end = time.time_ns()
    tracer.start_span(name, start_time=end - int(seconds * 1e9), attributes=attributes).end(
        end_time=end
    )


def inject(headers: dict[str, str]) -> None:
    """The active span's ``traceparent`` (and ``tracestate``) into ``headers``."""
    if tracer is not None:
        _propagator.inject(headers)
