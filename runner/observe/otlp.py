"""Spans written as OTLP protobuf (``ExportTraceServiceRequest``) by hand.

The runner writes two or three spans for every call, and the ``opentelemetry-
proto`` classes take about 40 µs to build and serialize one request span (upb,
measured): more than the runner's whole added latency budget. The wire format
is small and stable, so the runner writes the bytes itself, and its callers keep
the encoded attributes whose values are bounded (aliases, routes, status
codes), so that most of a span is a dictionary lookup. The tests decode what is
written here with ``opentelemetry-proto``.

Field numbers are those of ``opentelemetry/proto/trace/v1/trace.proto``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

SERVER, CLIENT, INTERNAL = 2, 3, 1
"""``Span.SpanKind`` values (OTLP's, one more than the OpenTelemetry API's ``SpanKind``)."""
_STATUS_ERROR = 2

_FIXED64 = struct.Struct("<Q")
_DOUBLE = struct.Struct("<d")


_KIND_AND_TIMES = struct.Struct("<BBBQBQ")  # kind (a varint below 128), start, end
_TIMES = struct.Struct("<QBQ")  # start, the end's tag, end
_ONE_BYTE = tuple(bytes((n,)) for n in range(0x80))
_KEPT = 1024
# What repeats from span to span, encoded once: attribute names, span names, the
# start of a text attribute by its name and length, integer attributes (token counts).
# Each stops growing at _KEPT entries, whatever a handler names its spans.
_keys: dict[str, bytes] = {}
_names: dict[str, bytes] = {}
_text_heads: dict[tuple[str, int], bytes] = {}
_int_fields: dict[tuple[str, int], bytes] = {}


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value]
    if value < 0x4000:  # two bytes: the length of most spans, written for every span
        return bytes(((value & 0x7F) | 0x80, value >> 7))
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _len(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    if isinstance(value, str):
        return _len(b"\x0a", value.encode("utf-8", "replace"))
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, int):
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if isinstance(value, float):
        return b"\x21" + _DOUBLE.pack(value)
    if isinstance(value, bytes):
        return _len(b"\x3a", value)
    if isinstance(value, Sequence):
        items = b"".join(_len(b"\x0a", _any_value(item)) for item in value)
        return _len(b"\x2a", items)
    return _len(b"\x0a", str(value).encode("utf-8", "replace"))


def _kept_field(kept: dict[str, bytes], tag: bytes, text: str) -> bytes:
    """The string field ``tag`` holding ``text`` (an attribute or span name: they repeat,
    so the field is kept in ``kept``)."""
    field = kept.get(text)
    if field is None:
        field = _len(tag, text.encode("utf-8", "replace"))
        if len(kept) < _KEPT:
            kept[text] = field
    return field


def text_attribute(key: str, value: str) -> bytes:
    """One string attribute of a span, as :func:`encode_attributes` writes it; for values
    that differ on every span (ids, paths), where this is several times quicker."""
    text = value.encode("utf-8", "replace")
    head = _text_heads.get((key, len(text)))
    if head is None:
        any_value = b"\x0a" + _varint(len(text))  # then the text
        pair = _kept_field(_keys, b"\x0a", key) + b"\x12" + _varint(len(any_value) + len(text))
        head = b"\x4a" + _varint(len(pair) + len(any_value) + len(text)) + pair + any_value
        if len(_text_heads) < _KEPT:
            _text_heads[(key, len(text))] = head
    return head + text


def int_attribute(key: str, value: int) -> bytes:
    """One integer attribute of a span (a token count), as :func:`encode_attributes`
    writes it."""
    field = _int_fields.get((key, value))
    if field is None:
        any_value = b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
        pair = _kept_field(_keys, b"\x0a", key) + b"\x12" + _ONE_BYTE[len(any_value)] + any_value
        field = b"\x4a" + _varint(len(pair)) + pair
        if len(_int_fields) < _KEPT:
            _int_fields[(key, value)] = field
    return field


def encode_attributes(values: Mapping[str, Any], tag: bytes = b"\x4a") -> bytes:
    """Attributes as the repeated ``KeyValue`` field ``tag`` (a span's, by default). A
    caller whose attributes repeat (a route, an alias) can keep the bytes and pass them
    to :func:`span` as they are."""
    parts = []
    for key, value in values.items():
        kind = type(value)
        if kind is str:
            text = value.encode("utf-8", "replace")
            any_value = b"\x0a" + _varint(len(text)) + text
        elif kind is int:
            any_value = b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
        else:
            any_value = _any_value(value)
        pair = _kept_field(_keys, b"\x0a", key) + b"\x12" + _varint(len(any_value)) + any_value
        parts.append(tag + _varint(len(pair)) + pair)
    return b"".join(parts)


def span(
    trace_id: bytes,
    span_id: bytes,
    parent_id: bytes,
    name: str,
    kind: int,
    start_ns: int,
    end_ns: int,
    attributes: Mapping[str, Any] | bytes,
    *,
    error: str | None = None,
    trace_state: str = "",
    events: Iterable[tuple[str, int, Mapping[str, Any]]] = (),
    links: Iterable[tuple[bytes, bytes, Mapping[str, Any]]] = (),
) -> bytes:
    """One ``Span`` message. ``attributes`` are a mapping or :func:`encode_attributes`' bytes;
    ``error`` (its message) gives it an error status; ``events`` are (name, time,
    attributes), ``links`` (trace id, span id, attributes)."""
    parts = [b"\x0a\x10", trace_id, b"\x12\x08", span_id]
    if trace_state:
        parts.append(_len(b"\x1a", trace_state.encode()))
    if parent_id:
        parts += (b"\x22\x08", parent_id)
    parts += (
        _kept_field(_names, b"\x2a", name),
        _KIND_AND_TIMES.pack(0x30, kind, 0x39, start_ns, 0x41, end_ns),
        attributes if isinstance(attributes, bytes) else encode_attributes(attributes),
    )
    for event_name, at, event_attributes in events:
        event = b"\x09" + _FIXED64.pack(at) + _len(b"\x12", event_name.encode("utf-8", "replace"))
        parts.append(_len(b"\x5a", event + encode_attributes(event_attributes, b"\x1a")))
    for link_trace, link_span, link_attributes in links:
        link = b"\x0a\x10" + link_trace + b"\x12\x08" + link_span
        parts.append(_len(b"\x6a", link + encode_attributes(link_attributes, b"\x22")))
    if error is not None:
        parts.append(_error_status(error))
    return b"".join(parts)


def _error_status(message: str) -> bytes:
    """A ``Status`` field with code ERROR and ``message``."""
    status = _len(b"\x12", message.encode("utf-8", "replace")) + b"\x18" + _varint(_STATUS_ERROR)
    return _len(b"\x7a", status)


def framed(span_message: bytes) -> bytes:
    """A ``Span`` message as the ``ScopeSpans.spans`` field it is exported in."""
    return _len(b"\x12", span_message)


def context_fields(parent_id: bytes = b"", trace_state: str = "") -> bytes:
    """A span's ``trace_state`` and ``parent_span_id`` fields, for :class:`SpanLayout`
    (empty for a root span of a trace without state)."""
    state = _len(b"\x1a", trace_state.encode()) if trace_state else b""
    return state + (b"\x22\x08" + parent_id if parent_id else b"")


class SpanLayout:
    """Spans alike but for their ids, times, parent and some last attributes, written
    framed (:func:`framed`) from bytes prepared once.

    The runner's spans of one kind of call (an alias's successful attempt, its
    admission) repeat all else, so a layout kept per kind makes writing one a single
    join: about a fifth of what :func:`span` costs.
    """

    __slots__ = ("_attributes", "_fixed", "_middle", "_status")

    def __init__(self, name: str, kind: int, attributes: bytes, error: str | None = None) -> None:
        self._middle = _kept_field(_names, b"\x2a", name) + bytes((0x30, kind, 0x39))
        self._attributes = attributes
        self._status = b"" if error is None else _error_status(error)
        # trace and span ids with their tags, then the times (fixed64) with theirs
        self._fixed = 18 + 10 + len(self._middle) + 8 + 9 + len(attributes) + len(self._status)

    def __call__(
        self, trace_id: bytes, span_id: bytes, context: bytes, start_ns: int, end_ns: int,
        extra: bytes = b"",
    ) -> bytes:  # fmt: skip
        """The span; ``context`` is :func:`context_fields`' bytes, ``extra`` attributes
        encoded by :func:`encode_attributes`."""
        return b"".join((
            b"\x12", _varint(self._fixed + len(context) + len(extra)), b"\x0a\x10", trace_id,
            b"\x12\x08", span_id, context, self._middle, _TIMES.pack(start_ns, 0x41, end_ns),
            self._attributes, extra, self._status,
        ))  # fmt: skip


def resource(attributes: Mapping[str, Any]) -> bytes:
    """A ``Resource`` message (the process that made the spans: ``service.name`` …)."""
    return encode_attributes(attributes, b"\x0a")


def export_request(resource_message: bytes, scopes: Mapping[tuple[str, str], list[bytes]]) -> bytes:
    """An ``ExportTraceServiceRequest`` of one resource's spans, grouped by their
    instrumentation scope (name, version); the spans are :func:`framed` (each item
    of a list may hold several)."""
    scope_spans = []
    for (name, version), spans in scopes.items():
        scope = _len(b"\x0a", name.encode("utf-8", "replace"))
        if version:
            scope += _len(b"\x12", version.encode("utf-8", "replace"))
        body = _len(b"\x0a", scope) + b"".join(spans)
        scope_spans.append(_len(b"\x12", body))
    resource_spans = _len(b"\x0a", resource_message) + b"".join(scope_spans)
    return _len(b"\x0a", resource_spans)
