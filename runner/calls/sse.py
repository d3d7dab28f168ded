"""The one framer of server-sent events, whichever backend produced the stream.

A backend yields its chunks' JSON payloads; the caller gets ``data: …`` events,
ending in ``data: [DONE]``, or in an error event when the stream fails after it
started (its status is sent by then, so the error travels in-band, in the
OpenAI envelope).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

from runner.calls.failures import upstream_error
from runner.calls.types import Deployment
from runner.errors import RunnerError

log = logging.getLogger(__name__)
DONE = b"data: [DONE]\n\n"


def error_event(error: RunnerError) -> bytes:
    """The SSE event that ends a stream which failed after it started."""
    return b"data: " + json.dumps(error.to_body()).encode() + b"\n\n"


class EventStream:
    """A backend's chunk payloads as server-sent events.

    ``first`` is the payload the call path already awaited (None if the stream
    was empty). Unless ``framed``, the payloads pass as they are, with no
    ``[DONE]``, and a failure is raised (for routes that frame events their own
    way, such as ``/v1/messages``). Not an async generator: one closed before its first event never
    runs its ``finally``, and would keep the upstream's connection open.
    """

    def __init__(
        self,
        first: bytes | None,
        rest: AsyncIterator[bytes],
        deployment: Deployment,
        *,
        framed: bool = True,
    ) -> None:
        self._first = first
        self._framed = framed
        self._rest = rest
        self._deployment = deployment
        self._done = False

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        if self._first is not None:
            payload, self._first = self._first, None
        else:
            try:
                payload = await anext(self._rest)
            except StopAsyncIteration:
                await self.aclose()
                if not self._framed:
                    raise
                return DONE
            except Exception as exc:
                error = upstream_error(exc, self._deployment)
                log.warning("stream from %r failed: %s", self._deployment.alias, error.message)
                await self.aclose()
                if not self._framed:
                    raise error from exc
                return error_event(error)
        return b"data: " + payload + b"\n\n" if self._framed else payload

    async def aclose(self) -> None:
        self._done = True
        await self._rest.aclose()  # type: ignore[attr-defined]
