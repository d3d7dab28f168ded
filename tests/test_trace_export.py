"""The span exporter against a loopback collector: batches, retries, refusals, a full
queue, gzip and headers, all from OpenTelemetry's own variables."""

from __future__ import annotations

import asyncio
import logging

import pytest

from runner.observe import otlp
from runner.observe.trace_export import ExportSettings, SpanExporter

from .fake_collector import Collector
from .helpers import until

SCOPE = ("runner", "")


def _span(n: int) -> bytes:
    return otlp.span(bytes(16), n.to_bytes(8, "big"), b"", f"span {n}", otlp.INTERNAL, 1, 2, {})


def _exporter(collector: Collector, **environ: str) -> SpanExporter:
    settings = ExportSettings.from_environ(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, **environ}
    )
    return SpanExporter(settings, {"service.name": "test"})


def test_settings_follow_the_sdks_variables():
    s = ExportSettings.from_environ(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_EXPORTER_OTLP_HEADERS": "authorization=Bearer%20x,tenant=a",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "tenant=b",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "3",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
            "OTEL_BSP_SCHEDULE_DELAY": "250",
            "OTEL_BSP_MAX_QUEUE_SIZE": "100",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "500",
        }
    )
    assert s.endpoint == "http://collector:4318/v1/traces"
    assert s.headers["tenant"] == "b" and "authorization" not in s.headers  # traces' own wins
    assert (s.timeout, s.gzip, s.schedule_delay, s.max_queue, s.max_batch) == (
        3.0, True, 0.25, 100, 100)  # fmt: skip
    exact = ExportSettings.from_environ(
        {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c/custom", "OTEL_BSP_MAX_QUEUE_SIZE": "x"}
    )
    assert exact.endpoint == "http://c/custom" and exact.max_queue == 2048
    assert ExportSettings.from_environ({}).endpoint == "http://localhost:4318/v1/traces"


async def test_batches_are_sent_when_full_and_on_schedule(collector: Collector):
    exporter = _exporter(
        collector, OTEL_BSP_SCHEDULE_DELAY="60000", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="3",
        OTEL_EXPORTER_OTLP_HEADERS="x-tenant=t1",
    )  # fmt: skip
    exporter.start()
    exporter.add(SCOPE, [_span(1)])  # from any thread, as a handler's spans are
    exporter.add_framed(SCOPE, 1, otlp.framed(_span(2)))  # from the loop, as a request's
    await asyncio.sleep(0.2)
    assert collector.spans == []  # neither full nor due
    exporter.add_framed(SCOPE, 1, otlp.framed(_span(3)))
    await until(lambda: len(collector.spans) == 3, 5, "a full batch sent at once")
    assert collector.exports[0]["x-tenant"] == "t1"
    assert collector.exports[0]["content-type"] == "application/x-protobuf"
    exporter.add(SCOPE, [_span(4)])
    await exporter.stop()  # what is left goes out at shutdown
    assert [s.name for s in collector.spans] == ["span 1", "span 2", "span 3", "span 4"]
    assert exporter.spans == {"exported": 4}


async def test_retryable_refusals_are_retried_and_others_dropped_logged_once(
    collector: Collector, caplog: pytest.LogCaptureFixture
):
    exporter = _exporter(
        collector, OTEL_BSP_SCHEDULE_DELAY="20", OTEL_EXPORTER_OTLP_COMPRESSION="gzip"
    )
    exporter.start()
    collector.answers[:] = [503, 429]
    exporter.add(SCOPE, [_span(1)])
    await until(lambda: len(collector.spans) == 1, 5, "the span, on the third try")
    assert len(collector.exports) == 3 and collector.exports[-1]["content-encoding"] == "gzip"
    caplog.set_level(logging.WARNING, "runner.observe.trace_export")
    collector.answers[:] = [400, 400]
    exporter.add(SCOPE, [_span(2)])
    await until(lambda: exporter.spans["failed"] == 1, 5, "a refused batch dropped")
    exporter.add(SCOPE, [_span(3)])
    await until(lambda: exporter.spans["failed"] == 2, 5, "the next one dropped too")
    await exporter.stop()
    assert len(collector.exports) == 5  # a 400 is not retried
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "the collector answered 400" in lines[0]
    assert "further export failures are not logged" in lines[0]


async def test_a_full_queue_drops_new_spans_and_counts_them(collector: Collector):
    exporter = _exporter(collector, OTEL_BSP_MAX_QUEUE_SIZE="5", OTEL_BSP_SCHEDULE_DELAY="60000")
    exporter.add(SCOPE, [_span(n) for n in range(4)])  # not started: nothing is sent yet
    exporter.add_framed(SCOPE, 2, otlp.framed(_span(4)) + otlp.framed(_span(5)))  # 6: dropped
    exporter.add_framed(SCOPE, 1, otlp.framed(_span(4)))
    exporter.add(SCOPE, [_span(9)])
    assert exporter.spans["dropped"] == 3
    await exporter.stop()
    assert [s.name for s in collector.spans] == [f"span {n}" for n in range(5)]


async def test_an_unreachable_collector_fails_quietly():
    exporter = SpanExporter(
        ExportSettings.from_environ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9"}), {}
    )
    exporter.add(SCOPE, [_span(1)])
    await exporter.stop()
    assert exporter.spans == {"failed": 1}
