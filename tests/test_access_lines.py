"""Access lines as the runner's logging configuration writes them: JSON straight from the
fields (the fast path) and through a log record give the same line; text is readable."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import logging.config
from collections.abc import Iterator

import pytest

from runner.logs import logging_config
from runner.observe import access_log
from runner.observe.records import CallRecord


@pytest.fixture
def configured() -> Iterator[None]:
    """Apply the runner's logging configuration for one test, then put the old one back."""
    names = ("runner", "runner.access", "uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {
        n: (lg.handlers[:], lg.level, lg.propagate) for n in names if (lg := logging.getLogger(n))
    }
    yield
    for name, (handlers, level, propagate) in saved.items():
        logger = logging.getLogger(name)
        logger.handlers[:], logger.level, logger.propagate = handlers, level, propagate


def _configure(format: str) -> io.StringIO:
    logging.config.dictConfig(logging_config("info", format))
    stream = io.StringIO()
    logging.getLogger("runner").handlers[0].setStream(stream)
    return stream


def _record(request_id: str = "req-1") -> CallRecord:
    record = CallRecord(request_id, "POST", "/v1/chat/completions")
    record.route, record.alias, record.integration = "/v1/chat/completions", "Model A", "plain"
    record.backend, record.status, record.tokens_in, record.tokens_out = "plain_http", 200, 3, 4
    record.attempts.append(0.01)
    record.ended = record.first_byte = record.started + 0.02
    return record


@pytest.mark.parametrize("request_id", ["req-1", 'a"quote\\and-a-backslash'])
def test_a_json_line_is_the_same_written_directly_or_through_a_record(
    configured: None, request_id: str
):
    stream = _configure("json")
    first = _record(request_id)
    first.key_id = "0123456789ab"
    access_log.write(first)  # the fast path: the runner's handler is all there is
    extra = io.StringIO()
    handler = logging.StreamHandler(extra)
    handler.setFormatter(logging.getLogger("runner").handlers[0].formatter)
    access_log.log.addHandler(handler)  # another handler: a log record must be made
    try:
        second = _record(request_id)
        second.key_id = "0123456789ab"
        access_log.write(second)
    finally:
        access_log.log.removeHandler(handler)
    direct, *others = [json.loads(line) for line in stream.getvalue().splitlines()]
    through_record = json.loads(extra.getvalue())
    assert others == [through_record]  # the record also reached the runner's handler
    for line in (direct, through_record):
        line.pop("time")
    assert direct == through_record
    assert direct["logger"] == "runner.access" and direct["level"] == "info"
    assert direct["message"] == "POST /v1/chat/completions 200"
    assert (direct["alias"], direct["tokens_out"], direct["attempts"]) == ("Model A", 4, 1)
    assert direct["latency_ms"] == 20.0
    assert (direct["request_id"], direct["key_id"]) == (request_id, "0123456789ab")


def test_a_text_line_is_readable(configured: None):
    stream = _configure("text")
    access_log.write(_record())
    line = stream.getvalue().strip()
    assert "runner.access: POST /v1/chat/completions 200 20.0 ms alias=Model A" in line
    assert "tokens_out=4" in line and "request_id=req-1" in line


def test_no_line_below_info(configured: None):
    logging.config.dictConfig(logging_config("warning", "json"))
    stream = io.StringIO()
    logging.getLogger("runner").handlers[0].setStream(stream)
    access_log.write(_record())
    assert stream.getvalue() == ""


async def test_lines_of_one_turn_of_the_event_loop_are_written_together(configured: None):
    stream = _configure("json")
    writes: list[str] = []
    write = stream.write
    stream.write = lambda text: writes.append(text) or write(text)  # type: ignore[method-assign]
    access_log.write(_record())
    access_log.write(_record())
    assert writes == []  # not yet: at the end of this turn
    await asyncio.sleep(0)
    assert len(writes) == 1 and len(writes[0].splitlines()) == 2
    access_log.write(_record())
    logging.getLogger("runner").handlers[0].flush()  # as logging does at exit
    assert len(stream.getvalue().splitlines()) == 3


def test_a_path_the_runner_does_not_serve_is_logged_as_sent_and_not_kept(configured: None):
    stream = _configure("json")
    kept = len(access_log._call_members)
    for n in range(3):
        record = CallRecord(f"req-{n}", "GET", f"/no/such/{n}")
        record.status, record.error_type, record.ended = 404, "not_found_error", record.started
        access_log.write(record)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["path"] for line in lines] == ["/no/such/0", "/no/such/1", "/no/such/2"]
    assert lines[2]["message"] == "GET /no/such/2 404" and "route" not in lines[2]
    assert len(access_log._call_members) == kept  # a caller's paths never fill the cache
