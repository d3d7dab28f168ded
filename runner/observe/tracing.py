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
from typing import Any, NamedTuple

log = logging.getLogger(__name__)
tracer: Any = None
"""The runner's tracer once :func:`configure` has turned tracing on, else None."""
_otel: Any = None


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return exporter == "otlp" or any(
        environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on if the environment asks; True when it is on. Once per process.
    Settings the SDK refuses leave tracing off, with the reason logged: a gateway does
    not stop serving for its telemetry."""
    global tracer, _otel
    if tracer is not None or not wanted(environ):
        return tracer is not None
    try:
        from opentelemetry import context, trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        service = {"service.name": environ.get("OTEL_SERVICE_NAME") or "runner"}
        provider = TracerProvider(resource=Resource.create(service))
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    except Exception as exc:
        log.error("traces are off: OpenTelemetry refused its settings (%s)", exc)
        return False
    trace.set_tracer_provider(provider)
    for name in ("opentelemetry.exporter.otlp.proto.http.trace_exporter",
                 "opentelemetry.sdk.trace.export"):  # fmt: skip
        logging.getLogger(name).addFilter(_Once())
    _otel = _Otel(context, trace, SpanKind, Status, StatusCode, TraceContextTextMapPropagator())
    tracer = trace.get_tracer("runner")
    log.info("exporting traces over OTLP/HTTP (OpenTelemetry's OTEL_* variables)")
    return True


class _Otel(NamedTuple):
    """The OpenTelemetry names the hooks use, bound once (no import on the hot path)."""

    context: Any
    trace: Any
    SpanKind: Any
    Status: Any
    StatusCode: Any
    propagator: Any


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


def open_server_span(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> Any:
    """Start the span of one request, continuing the caller's ``traceparent``, and make it
    the current span; returns what :func:`close_server_span` needs."""
    carrier = {
        name.decode("latin-1"): value.decode("latin-1")
        for name, value in headers
        if name in (b"traceparent", b"tracestate")
    }
    span = tracer.start_span(
        f"{method} {path}",
        context=_otel.propagator.extract(carrier) if carrier else None,
        kind=_otel.SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path},
    )
    return span, _otel.context.attach(_otel.trace.set_span_in_context(span))


def close_server_span(opened: Any, record: Any) -> None:
    span, token = opened
    _otel.context.detach(token)
    finish_server_span(span, record)


@contextmanager
def child(name: str, client: bool = False, **attributes: Any) -> Iterator[Any]:
    """A child span of the active one, active inside the block; nothing when off. For
    what is rare (an OAuth2 token fetch): it costs a generator even when off."""
    if tracer is None:
        yield None
        return
    kind = _otel.SpanKind.CLIENT if client else _otel.SpanKind.INTERNAL
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes) as span:
        yield span


def finish_server_span(span: Any, record: Any) -> None:
    """End a request's span with what its record says (GenAI semantic conventions, and
    the runner's own names under ``runner.``)."""
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
        span.set_status(
            _otel.Status(_otel.StatusCode.ERROR, record.error_code or str(record.status))
        )
    span.end()


_OPERATIONS = {
    "chat": "chat",
    "completion": "text_completion",
    "embedding": "embeddings",
    "rerank": "rerank",
}


def attempted(seconds: float, number: int, failure: Any = None) -> None:
    """The span of an upstream attempt that has just ended (``seconds`` long), made
    afterwards: nothing runs inside it, so it need not be current while it runs."""
    end = time.time_ns()
    span = tracer.start_span(
        "upstream attempt",
        kind=_otel.SpanKind.CLIENT,
        start_time=end - int(seconds * 1e9),
        attributes={"runner.attempt": number},
    )
    if failure is not None:
        _failed(span, failure)
    span.end(end_time=end)


async def traced_attempt(attempt: Any, number: int) -> Any:
    """``await attempt()`` inside the attempt's span, current while it runs: for handlers,
    whose own spans then nest under their call."""
    with tracer.start_as_current_span(
        "upstream attempt",
        kind=_otel.SpanKind.CLIENT,
        attributes={"runner.attempt": number},
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            return await attempt()
        except Exception as exc:
            _failed(span, exc)
            raise


def _failed(span: Any, exc: Any) -> None:
    span.set_status(_otel.Status(_otel.StatusCode.ERROR, getattr(exc, "code", None) or "failed"))
    span.set_attribute("error.type", getattr(exc, "type", type(exc).__name__))


def waited(name: str, seconds: float, **attributes: Any) -> None:
    """A child span of the active one for a wait that has just ended (``seconds`` long),
    made afterwards, so nothing is opened while there is nothing to wait for."""
    end = time.time_ns()
    tracer.start_span(name, start_time=end - int(seconds * 1e9), attributes=attributes).end(
        end_time=end
    )


def inject(headers: dict[str, str]) -> None:
    """The active span's ``traceparent`` (and ``tracestate``) into ``headers``, written
    here as W3C Trace Context spells it (the propagator's generic path costs more)."""
    if tracer is None:
        return
    context = _otel.trace.get_current_span().get_span_context()
    if not context.is_valid:
        return
    headers["traceparent"] = (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    if context.trace_state:
        headers["tracestate"] = context.trace_state.to_header()
