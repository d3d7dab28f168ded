"""Noticing, at once, that the caller of a chat request has hung up.

A caller that disconnects must release its concurrency slot and the upstream
connection right away, even while the upstream is silent: otherwise a slow
upstream holds the slot until its timeout, and the next caller gets a 429.
Once the body has been read, the server's ``receive()`` resolves only on
``http.disconnect``; so a watching task waits on it and cancels the task
serving the request. Cancellation unwinds the call path, whose ``finally``
blocks give back the slots and close the upstream response mid-body.

Uvicorn also answers ``receive()`` with ``http.disconnect`` once the response
is complete, so the watch must be stopped before the last byte is sent.

The watching task starts only once the call has taken :data:`WATCH_AFTER_SECONDS`
(one timer per call, no task): a task for every call cost ~14% of the runner's
throughput at 32 connections, and a call answered sooner has nothing worth
cancelling. A hang-up is still noticed within that time.
"""

from __future__ import annotations

import asyncio

from starlette.types import Receive

WATCH_AFTER_SECONDS = 0.02


class HangUpWatch:
    """Cancels the current task when the caller disconnects, until :meth:`stop`."""

    def __init__(self, receive: Receive) -> None:
        self.hung_up = False
        self._served = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(WATCH_AFTER_SECONDS, self._start, loop, receive)

    def _start(self, loop: asyncio.AbstractEventLoop, receive: Receive) -> None:
        self._watcher = loop.create_task(self._watch(receive))

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass  # the body was read already: nothing else can arrive but the disconnect
        self.hung_up = True
        if self._served is not None:
            self._served.cancel()

    def stop(self) -> None:
        """Stop watching: from here on a disconnect means the response is complete."""
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()

    def absorb(self) -> None:
        """Take back the cancellation this watch made, once the work has unwound."""
        if self._served is not None:
            self._served.uncancel()
