"""OpenTelemetry traces, when OpenTelemetry's own environment variables ask for them.

``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, or
``OTEL_TRACES_EXPORTER=otlp``) turns them on; ``OTEL_TRACES_EXPORTER=none`` or
``OTEL_SDK_DISABLED=true`` keeps them off.

The runner records its own spans (the request's, admission, each upstream
attempt, the wait for limits, an OAuth2 token fetch) without the OpenTelemetry
SDK: a request's trace is a :class:`RequestTrace` on its record, noting its
child spans as they end. Finished records reach :func:`export` in the batches
of the app's :class:`~runner.observe.recorder.Recorder`, which writes their
spans as OTLP bytes (:mod:`runner.observe.request_spans`) many at a time, a
fraction of the cost of writing each between requests, and queues the bytes in
:mod:`runner.observe.trace_export`. The SDK would cost about 95 µs of CPU per
call and a thread fighting the event loop for the GIL. The SDK is still set up
as the process's tracer provider, for custom handlers: a handler's
attempt is an SDK span, current while it runs, so the spans a handler opens
with OpenTelemetry's API nest under it and go out in the same batches.

Without the variables, nothing here is imported or run: every hook is behind a
check of ``record.trace``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from runner.observe import handler_spans, otlp, request_spans
from runner.observe.records import current
from runner.observe.trace_context import (
    Parent,
    Sampler,
    new_ids,
    new_span_id,
    parent_from,
    traceparent,
)
from runner.observe.trace_export import ExportSettings, SpanExporter

log = logging.getLogger(__name__)
SCOPE = ("runner", "")
exporter: SpanExporter | None = None
"""The queue every span goes to, once :func:`configure` has turned traces on."""
_sampler: Sampler | None = None
_sdk: handler_spans.HandlerSpans | None = None
# Child spans by kind (an attempt's number and error; admission, limits), laid out once
# with their bounded attributes: writing one is then a lookup and a join.
_attempt_layouts: dict[Any, otlp.SpanLayout] = {}
_child_layouts: dict[tuple[Any, ...], otlp.SpanLayout] = {}
_LAYOUTS_KEPT = 4096
_ADMITTED = otlp.SpanLayout(
    "admission", otlp.INTERNAL, otlp.encode_attributes({"runner.admitted": True})
)
_REFUSED = otlp.encode_attributes({"runner.admitted": False})


def wanted(environ: Mapping[str, str] = os.environ) -> bool:
    exporter_name = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter_name == "none" or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return exporter_name == "otlp" or any(
        environ.get(name)
        for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def configure(environ: Mapping[str, str] = os.environ) -> bool:
    """Turn tracing on if the environment asks; True when it is on. Once per process.
    Settings OpenTelemetry refuses leave tracing off, with the reason logged: a gateway
    does not stop serving for its telemetry."""
    global exporter, _sampler, _sdk
    if exporter is not None or not wanted(environ):
        return exporter is not None
    try:
        from opentelemetry.sdk.resources import Resource

        service = {"service.name": environ.get("OTEL_SERVICE_NAME") or "runner"}
        resource = Resource.create(service)
        sampler = Sampler.from_environ(environ)
        span_exporter = SpanExporter(ExportSettings.from_environ(environ), resource.attributes)
        _sdk = handler_spans.HandlerSpans(resource, span_exporter, SCOPE)
    except Exception as exc:
        log.error("traces are off: OpenTelemetry refused its settings (%s)", exc)
        return False
    exporter, _sampler = span_exporter, sampler
    log.info("exporting traces over OTLP/HTTP to %s", span_exporter.settings.endpoint)
    return True


class RequestTrace:
    """One request's place in its trace: the ids it was given, and the child spans that
    ended so far, queued with the request's own when it ends and encoded when sent.

    ``ids`` is the trace id (16 bytes) then the request span's id (8), as OTLP and,
    in hex, ``traceparent`` write them."""

    __slots__ = ("children", "ids", "parent_id", "sampled", "start_ns", "trace_state")

    def __init__(self, parent: Parent | None) -> None:
        if parent is None:
            ids = new_ids()
            self.parent_id, self.trace_state = b"", ""
        else:
            ids = parent.trace_id + new_span_id()
            self.parent_id, self.trace_state = parent.span_id, parent.trace_state
        self.ids = ids
        self.sampled = _sampler is not None and _sampler.sampled(ids[:16], parent)
        self.start_ns = time.time_ns()
        self.children: list[tuple[otlp.SpanLayout, int, int]] = []

    def child(self, layout: otlp.SpanLayout, seconds: float) -> None:
        """Note a child span that ended just now, ``seconds`` long."""
        end = time.time_ns()
        self.children.append((layout, end - int(seconds * 1e9), end))


def open_request(headers: Sequence[tuple[bytes, bytes]]) -> RequestTrace | None:
    """The trace of a request that has just arrived, continuing the caller's
    ``traceparent``; None when traces are off."""
    if exporter is None:
        return None
    parent = None
    for name, value in headers:
        if name == b"traceparent":
            state = next((v for n, v in headers if n == b"tracestate"), b"")
            parent = parent_from(value, state)
            break
    return RequestTrace(parent)


def export(record: Any) -> None:
    """Queue a finished request's spans, if it was traced: a consumer of the app's
    :class:`~runner.observe.recorder.Recorder`, so that requests are encoded many at a
    time, which costs a fraction of encoding each as it ends."""
    trace = record.trace
    if trace is not None and trace.sampled and exporter is not None:
        exporter.add_framed(SCOPE, 1 + len(trace.children), request_spans.encoded(trace, record))


def _layout(name: str, kind: int, attributes: bytes, error: str | None) -> otlp.SpanLayout:
    """The layout of a child span of this kind, kept while there are few kinds."""
    key = (name, kind, attributes, error)
    layout = _child_layouts.get(key)
    if layout is None:
        layout = otlp.SpanLayout(name, kind, attributes, error)
        if len(_child_layouts) < _LAYOUTS_KEPT:
            _child_layouts[key] = layout
    return layout


def attempted(trace: RequestTrace, seconds: float, number: int, failure: Any = None) -> None:
    """The span of an upstream attempt that has just ended (``seconds`` long), made
    afterwards: nothing runs inside it, so it need not be current while it runs."""
    if not trace.sampled:
        return
    failed = failure is not None
    shape: Any = number  # the common case, its key quickest to make
    if failed:
        shape = (number, getattr(failure, "type", None), getattr(failure, "code", None))
    layout = _attempt_layouts.get(shape)
    if layout is None:
        attributes: dict[str, Any] = {"runner.attempt": number}
        error = None
        if failed:
            attributes["error.type"] = getattr(failure, "type", None) or type(failure).__name__
            error = getattr(failure, "code", None) or "failed"
        encoded = otlp.encode_attributes(attributes)
        layout = otlp.SpanLayout("upstream attempt", otlp.CLIENT, encoded, error)
        if len(_attempt_layouts) < _LAYOUTS_KEPT:
            _attempt_layouts[shape] = layout
    trace.child(layout, seconds)


def admitted(trace: RequestTrace, seconds: float, refusal: Any = None) -> None:
    """The span of the admission checks (key, size), which took ``seconds``; ``refusal``
    is the error that refused the request, if one did."""
    if trace.sampled:
        if refusal is None:
            trace.child(_ADMITTED, seconds)
        else:
            trace.child(_layout("admission", otlp.INTERNAL, _REFUSED, refusal.code), seconds)


def waited(trace: RequestTrace, name: str, seconds: float, **attributes: Any) -> None:
    """A child span for a wait that has just ended (``seconds`` long)."""
    if trace.sampled:
        trace.child(_layout(name, otlp.INTERNAL, otlp.encode_attributes(attributes), None), seconds)


@contextmanager
def child(name: str, client: bool = False, **attributes: Any) -> Iterator[None]:
    """A child span of the current request's around the block; nothing when off. For what
    is rare (an OAuth2 token fetch): it costs a generator even when off."""
    record = current.get()
    trace = record.trace if record is not None else None
    if trace is None or not trace.sampled:
        yield
        return
    started = time.perf_counter()
    error = None
    try:
        yield
    except BaseException as exc:
        error = type(exc).__name__
        raise
    finally:
        kind = otlp.CLIENT if client else otlp.INTERNAL
        layout = _layout(name, kind, otlp.encode_attributes(attributes), error)
        trace.child(layout, time.perf_counter() - started)


async def traced_attempt(
    trace: RequestTrace, attempt: Callable[[], Awaitable[Any]], number: int
) -> Any:
    """``await attempt()`` inside an SDK span current while it runs, for handlers."""
    assert _sdk is not None
    return await _sdk.traced(trace, attempt, number)


def inject(trace: RequestTrace, headers: dict[str, str]) -> None:
    """The request span's ``traceparent`` (and ``tracestate``) into ``headers``."""
    headers["traceparent"] = traceparent(trace.ids, trace.sampled)
    if trace.trace_state:
        headers["tracestate"] = trace.trace_state


def start_export() -> None:
    if exporter is not None:
        exporter.start()


async def stop_export() -> None:
    if exporter is not None:
        await exporter.stop()
