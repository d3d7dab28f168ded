"""The Recorder hands finished requests on in batches: when enough have gathered, when
its delay is up, when asked (a scrape, shutdown), and at once with no event loop."""

from __future__ import annotations

from runner.observe.recorder import Recorder
from runner.observe.records import CallRecord

from .helpers import until


def _records(n: int) -> list[CallRecord]:
    return [CallRecord(f"r{i}", "POST", "/v1/chat/completions") for i in range(n)]


async def test_a_full_batch_goes_at_once_consumer_by_consumer():
    seen: list[tuple[str, str]] = []
    recorder = Recorder(
        [lambda r: seen.append(("metrics", r.request_id)),
         lambda r: seen.append(("log", r.request_id))],
        delay=60, size=3,
    )  # fmt: skip
    first, second, third = _records(3)
    recorder.add(first)
    recorder.add(second)
    assert seen == []
    recorder.add(third)
    assert seen == [("metrics", "r0"), ("metrics", "r1"), ("metrics", "r2"),
                    ("log", "r0"), ("log", "r1"), ("log", "r2")]  # fmt: skip


async def test_the_rest_goes_when_the_delay_is_up_or_when_drained():
    seen: list[str] = []
    recorder = Recorder([lambda r: seen.append(r.request_id)], delay=0.05, size=100)
    one, two = _records(2)
    recorder.add(one)
    await until(lambda: seen, 5, "the record handed on after the delay")
    assert seen == ["r0"]
    recorder.add(two)
    recorder.drain()  # as GET /metrics does before it renders
    assert seen == ["r0", "r1"]


def test_without_an_event_loop_each_record_goes_at_once():
    seen: list[str] = []
    Recorder([lambda r: seen.append(r.request_id)]).add(_records(1)[0])
    assert seen == ["r0"]
