"""A finished request's spans, written as OTLP bytes from its record.

The request's own span says what the call was (route, alias, integration,
status, GenAI attributes); everything in it but the ids, times, request id,
tokens and an unserved path repeats from call to call of one kind, so each kind
is laid out once (:class:`~runner.observe.otlp.SpanLayout`) and kept. Its
children were laid out as they ended (:mod:`runner.observe.tracing`).
"""

from __future__ import annotations

import time
from typing import Any

from runner.observe import otlp
from runner.observe.records import bounded_route
from runner.observe.trace_context import new_span_id

_request_layouts: dict[tuple[Any, ...], otlp.SpanLayout] = {}
_LAYOUTS_KEPT = 4096
_OPERATIONS = {"chat": "chat", "completion": "text_completion", "embedding": "embeddings",
               "rerank": "rerank"}  # fmt: skip


def encoded(trace: Any, record: Any) -> bytes:
    """The request's span, from what its record says, and its children, framed as OTLP
    (``trace`` is the record's :class:`~runner.observe.tracing.RequestTrace`)."""
    trace_id, span_id = trace.ids[:16], trace.ids[16:]
    as_parent = otlp.context_fields(span_id)
    spans = [
        layout(trace_id, new_span_id(), as_parent, start, end)
        for layout, start, end in trace.children
    ]
    route = record.route or bounded_route(record.path)
    shape = (
        record.method, route, record.path == route, record.status, record.alias,
        record.integration, record.backend, record.error_type, record.error_code,
        len(record.attempts), record.operation, record.system, record.upstream_model,
    )  # fmt: skip
    layout = _request_layouts.get(shape)
    if layout is None:
        layout = _request_layout(*shape)
        if len(_request_layouts) < _LAYOUTS_KEPT:
            _request_layouts[shape] = layout
    unbounded = otlp.text_attribute("runner.request_id", record.request_id)
    if record.path != route:  # else it is among the layout's attributes
        unbounded += otlp.text_attribute("url.path", record.path)
    if record.tokens_in is not None:
        unbounded += otlp.int_attribute("gen_ai.usage.input_tokens", record.tokens_in)
    if record.tokens_out is not None:
        unbounded += otlp.int_attribute("gen_ai.usage.output_tokens", record.tokens_out)
    ended = record.ended if record.ended is not None else time.perf_counter()
    context = b""
    if trace.parent_id or trace.trace_state:
        context = otlp.context_fields(trace.parent_id, trace.trace_state)
    spans.append(layout(
        trace_id, span_id, context, trace.start_ns,
        trace.start_ns + int((ended - record.started) * 1e9), unbounded,
    ))  # fmt: skip
    return b"".join(spans)


def _request_layout(
    method: str, route: str, path_is_route: bool, status: int, alias: str | None,
    integration: str | None, backend: str | None, error_type: str | None,
    error_code: str | None, attempts: int, operation: str | None, system: str | None,
    upstream_model: str | None,
) -> otlp.SpanLayout:  # fmt: skip
    """A request span's layout: its name, its attributes with bounded values (GenAI
    semantic conventions, and the runner's own under ``runner.``), its error status."""
    found = {
        "http.request.method": method,
        "http.route": route,
        "url.path": route if path_is_route else None,
        "http.response.status_code": status,
        "runner.alias": alias,
        "runner.integration": integration,
        "runner.backend": backend,
        "runner.error.category": error_type,
        "runner.error.code": error_code,
        "runner.attempts": attempts or None,
        "gen_ai.operation.name": _OPERATIONS.get(operation or ""),
        "gen_ai.system": system,
        "gen_ai.request.model": alias,
        "gen_ai.response.model": upstream_model,
    }
    attributes = otlp.encode_attributes({k: v for k, v in found.items() if v is not None})
    failed = error_type is not None or status >= 500
    error = (error_code or str(status)) if failed else None
    return otlp.SpanLayout(f"{method} {route}", otlp.SERVER, attributes, error)
