"""The runner's own OTLP encoding, W3C trace context and sampler, checked against the
reference parts: ``opentelemetry-proto`` decodes every byte the runner writes, and the
SDK's own sampler decides on the same trace ids."""

from __future__ import annotations

import random

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

from runner.observe import otlp
from runner.observe.trace_context import Sampler, parent_from, traceparent

TRACE, SPAN, PARENT = bytes(range(16)), bytes(range(8)), bytes(range(8, 16))


def _decoded(
    spans: dict[tuple[str, str], list[bytes]], resource: dict
) -> ExportTraceServiceRequest:
    framed = {scope: [otlp.framed(span) for span in found] for scope, found in spans.items()}
    return ExportTraceServiceRequest.FromString(
        otlp.export_request(otlp.resource(resource), framed)
    )


def _values(attributes) -> dict:
    def value(v):
        kind = v.WhichOneof("value")
        if kind == "array_value":
            return [value(item) for item in v.array_value.values]
        return getattr(v, kind)

    return {a.key: value(a.value) for a in attributes}


def test_every_attribute_type_events_links_and_status_decode_as_written():
    attributes = {
        "text": "héllo ✓", "yes": True, "no": False, "count": 3, "negative": -5,
        "big": 2**62, "ratio": 0.25, "raw": b"\x00\xff", "list": ["a", "b"], "ints": [1, 2],
        "runner.alias": "Cached",
    }  # fmt: skip
    encoded = otlp.span(
        TRACE, SPAN, PARENT, "POST /v1/chat/completions", otlp.SERVER, 10**18, 10**18 + 5,
        attributes, error="upstream_error",
        trace_state="vendor=x", events=[("retry", 10**18 + 1, {"n": 1})],
        links=[(TRACE[::-1], SPAN[::-1], {"why": "follows"})],
    )  # fmt: skip
    request = _decoded({("runner", ""): [encoded]}, {"service.name": "svc"})
    [resource_spans] = request.resource_spans
    assert _values(resource_spans.resource.attributes) == {"service.name": "svc"}
    [scope] = resource_spans.scope_spans
    assert scope.scope.name == "runner"
    [span] = scope.spans
    assert (span.trace_id, span.span_id, span.parent_span_id) == (TRACE, SPAN, PARENT)
    assert span.name == "POST /v1/chat/completions" and span.kind == 2
    assert (span.start_time_unix_nano, span.end_time_unix_nano) == (10**18, 10**18 + 5)
    assert span.trace_state == "vendor=x"
    assert _values(span.attributes) == attributes
    assert (span.status.code, span.status.message) == (2, "upstream_error")
    [event] = span.events
    assert (event.name, event.time_unix_nano, _values(event.attributes)) == (
        "retry", 10**18 + 1, {"n": 1})  # fmt: skip
    [link] = span.links
    assert (link.trace_id, link.span_id) == (TRACE[::-1], SPAN[::-1])
    assert _values(link.attributes) == {"why": "follows"}


def test_a_span_without_parent_or_error_and_spans_of_several_scopes():
    root = otlp.span(TRACE, SPAN, b"", "root", otlp.INTERNAL, 1, 2, {})
    client = otlp.span(TRACE, PARENT, SPAN, "call", otlp.CLIENT, 1, 2, {"runner.attempt": 1})
    mine = otlp.span(TRACE, PARENT[::-1], PARENT, "handler work", otlp.INTERNAL, 1, 2, {})
    request = _decoded({("runner", ""): [root, client], ("my-handler", "1.0"): [mine]}, {})
    scopes = request.resource_spans[0].scope_spans
    assert [(s.scope.name, s.scope.version, len(s.spans)) for s in scopes] == [
        ("runner", "", 2), ("my-handler", "1.0", 1)]  # fmt: skip
    first = scopes[0].spans[0]
    assert first.parent_span_id == b"" and first.status.code == 0 and not first.attributes


def test_attributes_encoded_ahead_are_the_same_as_a_mapping():
    values = {"runner.alias": "A", "runner.attempts": 2}
    ahead = otlp.encode_attributes({"runner.alias": "A"}) + otlp.encode_attributes(
        {"runner.attempts": 2}
    )
    assert otlp.span(TRACE, SPAN, b"", "s", 1, 1, 2, ahead) == otlp.span(
        TRACE, SPAN, b"", "s", 1, 1, 2, values
    )


@pytest.mark.parametrize("text", ["", "/v1/chat/completions", "é" * 70, "x" * 20_000])
def test_a_text_attribute_is_written_as_encode_attributes_writes_it(text: str):
    for key in ("url.path", "k" * 200):
        assert otlp.text_attribute(key, text) == otlp.encode_attributes({key: text})
        assert otlp.text_attribute(key, text) == otlp.encode_attributes({key: text})  # kept


@pytest.mark.parametrize("number", [0, 1, 127, 128, 2**40, -1])
def test_an_int_attribute_is_written_as_encode_attributes_writes_it(number: int):
    key = "gen_ai.usage.input_tokens"
    assert otlp.int_attribute(key, number) == otlp.encode_attributes({key: number})


@pytest.mark.parametrize("trace_state", ["", "vendor=x"])
@pytest.mark.parametrize("parent", [b"", PARENT])
@pytest.mark.parametrize("error", [None, "upstream_error"])
def test_a_span_layout_writes_what_span_writes(trace_state: str, parent: bytes, error):
    """Layouts write the runner's own spans; ``span`` is checked against the reference."""
    fixed = otlp.encode_attributes({"runner.alias": "A", "runner.attempts": 2})
    layout = otlp.SpanLayout("POST /v1/chat/completions", otlp.SERVER, fixed, error)
    context = otlp.context_fields(parent, trace_state)
    for extra in ({}, {"runner.request_id": "r" * 200, "gen_ai.usage.input_tokens": 7}):
        written = layout(TRACE, SPAN, context, 10**18, 10**18 + 5, otlp.encode_attributes(extra))
        expected = otlp.span(
            TRACE, SPAN, parent, "POST /v1/chat/completions", otlp.SERVER, 10**18, 10**18 + 5,
            {"runner.alias": "A", "runner.attempts": 2, **extra}, error=error,
            trace_state=trace_state,
        )  # fmt: skip
        assert written == otlp.framed(expected)


@pytest.mark.parametrize(
    "header",
    [
        "", "junk", "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has 4 parts
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
    ],
)  # fmt: skip
def test_invalid_traceparents_start_a_new_trace(header: str):
    assert parent_from(header.encode()) is None


def test_a_valid_traceparent_and_its_tracestate_are_continued():
    parent = parent_from(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", b"a=1,b=2")
    assert parent is not None and not parent.sampled and parent.trace_state == "a=1,b=2"
    assert traceparent(parent.trace_id + parent.span_id, True) == (
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")  # fmt: skip
    future = parent_from(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-more")
    assert future is not None and future.sampled  # a later version's extra fields are allowed
    assert parent_from(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                       b"bad\x01state").trace_state == ""  # fmt: skip


def test_the_ratio_sampler_picks_the_trace_ids_the_sdks_picks():
    ours = Sampler.from_environ({"OTEL_TRACES_SAMPLER": "traceidratio",
                                 "OTEL_TRACES_SAMPLER_ARG": "0.3"})  # fmt: skip
    sdk = TraceIdRatioBased(0.3)
    ids = [random.getrandbits(128) for _ in range(2000)]
    decisions = [ours.sampled(i.to_bytes(16, "big"), None) for i in ids]
    assert decisions == [sdk.should_sample(None, i, "x").decision.is_sampled() for i in ids]
    assert 400 < sum(decisions) < 800


def test_parent_based_samplers_follow_the_callers_flag():
    sampled = parent_from(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    unsampled = parent_from(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")
    default, own = Sampler.from_environ({}), bytes(15) + b"\x01"  # a trace id of 1
    assert default.sampled(own, None) and default.sampled(own, sampled)
    assert not default.sampled(own, unsampled)
    off = Sampler.from_environ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"})
    assert not off.sampled(own, None) and off.sampled(own, sampled)
    always_on = Sampler.from_environ({"OTEL_TRACES_SAMPLER": "always_on"})
    assert always_on.sampled(own, unsampled)  # not parent-based: the caller's flag is ignored


def test_unknown_sampler_settings_fall_back_to_the_default(caplog):
    assert Sampler.from_environ({"OTEL_TRACES_SAMPLER": "sometimes"}) == Sampler(True, 1 << 64)
    bad_ratio = Sampler.from_environ(
        {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "2"}
    )
    assert bad_ratio == Sampler(False, 1 << 64)
    assert "sometimes" in caplog.text and "OTEL_TRACES_SAMPLER_ARG" in caplog.text
