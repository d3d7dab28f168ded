"""The OpenTelemetry SDK, set up for the spans custom handlers open themselves.

A handler calls OpenTelemetry's API (``trace.get_tracer(...).start_as_current_span``);
for its spans to nest under the call, the call's attempt must be a span of the
process's tracer provider, current while the handler runs. The provider follows
the runner's sampling decision (every handler span descends from a runner
span) and hands each finished span, encoded, to the runner's exporter, so they
go out in the same batches as the runner's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from runner.observe import otlp
from runner.observe.trace_export import Scope, SpanExporter


class HandlerSpans:
    """The tracer provider for handlers, and the attempt span a handler runs in."""

    def __init__(self, resource: Any, exporter: SpanExporter, scope: Scope) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased

        class Forward(SpanProcessor):
            def on_end(self, span: Any) -> None:
                exporter.add(_scope_of(span, scope), [_encoded(span, trace.StatusCode.ERROR)])

        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON))
        provider.add_span_processor(Forward())
        trace.set_tracer_provider(provider)
        self._trace = trace
        self._tracer = provider.get_tracer(scope[0])

    async def traced(self, request: Any, attempt: Callable[[], Awaitable[Any]], number: int) -> Any:
        """``await attempt()`` inside the attempt's span, a child of ``request``'s (a
        :class:`runner.observe.tracing.RequestTrace`), current while it runs."""
        trace = self._trace
        parent = trace.set_span_in_context(
            trace.NonRecordingSpan(
                trace.SpanContext(
                    int.from_bytes(request.ids[:16], "big"),
                    int.from_bytes(request.ids[16:], "big"), is_remote=False,
                    trace_flags=trace.TraceFlags(1 if request.sampled else 0),
                )
            )
        )  # fmt: skip
        with self._tracer.start_as_current_span(
            "upstream attempt", context=parent, kind=trace.SpanKind.CLIENT,
            attributes={"runner.attempt": number}, record_exception=False,
            set_status_on_exception=False,
        ) as span:  # fmt: skip
            try:
                return await attempt()
            except Exception as exc:
                code = getattr(exc, "code", None) or "failed"
                span.set_status(trace.Status(trace.StatusCode.ERROR, code))
                span.set_attribute("error.type", getattr(exc, "type", type(exc).__name__))
                raise


def _scope_of(span: Any, default: Scope) -> Scope:
    scope = span.instrumentation_scope
    return (scope.name, scope.version or "") if scope is not None else default


def _encoded(span: Any, error_code: Any) -> bytes:
    """An SDK ``ReadableSpan`` as OTLP bytes."""
    context, parent = span.context, span.parent
    error = (span.status.description or "") if span.status.status_code is error_code else None
    return otlp.span(
        context.trace_id.to_bytes(16, "big"), context.span_id.to_bytes(8, "big"),
        parent.span_id.to_bytes(8, "big") if parent is not None else b"",
        span.name, span.kind.value + 1, span.start_time, span.end_time,
        dict(span.attributes or {}), error=error,
        events=[(e.name, e.timestamp, e.attributes or {}) for e in span.events],
        links=[
            (link.context.trace_id.to_bytes(16, "big"), link.context.span_id.to_bytes(8, "big"),
             link.attributes or {})
            for link in span.links
        ],
    )  # fmt: skip
