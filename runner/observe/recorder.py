"""Finished requests, handed to the metrics and the access log in batches.

Counting a request and writing its access line take a few microseconds each
when done many at a time, and several times that when done between requests,
whose own code has pushed them out of the CPU's caches (measured on the
plain path). So the records of finished requests wait, at most ``delay``
seconds or until ``size`` of them have gathered, and are then handed on
together. ``GET /metrics`` drains the wait first, so a scrape counts every
request answered before it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from runner.observe.records import CallRecord

Consumer = Callable[[CallRecord], None]


class Recorder:
    """Gathers finished records and hands each to every consumer, a batch at a time."""

    def __init__(self, consumers: Sequence[Consumer], delay: float = 0.05, size: int = 256) -> None:
        self.consumers = tuple(consumers)
        self.delay = delay
        self.size = size
        self._pending: list[CallRecord] = []

    def add(self, record: CallRecord) -> None:
        pending = self._pending
        pending.append(record)
        if len(pending) >= self.size:
            self.drain()
        elif len(pending) == 1:
            try:
                asyncio.get_running_loop().call_later(self.delay, self.drain)
            except RuntimeError:  # no event loop to wait on
                self.drain()

    def drain(self) -> None:
        """Hand on every waiting record now (consumer by consumer, each running hot)."""
        pending, self._pending = self._pending, []
        for consume in self.consumers:
            for record in pending:
                consume(record)
