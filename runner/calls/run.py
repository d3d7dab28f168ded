"""Running a prepared call: its deployment's limits around its backend, errors made legible.

Every backend is called the same way (:class:`runner.calls.types.Backend`). A
stream's first chunk is awaited here, inside the limits and retries, so a
failure before any output (an upstream refusal, a handler that raises at once)
still gets a proper status and may be retried; after that the stream is
framed as server-sent events (:mod:`runner.calls.sse`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from runner.calls.failures import upstream_error
from runner.calls.limits import guarded
from runner.calls.sse import EventStream
from runner.calls.types import PreparedCall


async def complete(call: PreparedCall, *, framed: bool = True) -> bytes | AsyncIterator[bytes]:
    """The answer's JSON body, or its server-sent events when streaming (with ``framed``
    false, the chunks' payloads, and a failure after the first raised as a RunnerError)."""
    return await guarded(call.deployment, lambda: _attempt(call, framed))


async def _attempt(call: PreparedCall, framed: bool) -> bytes | AsyncIterator[bytes]:
    deployment = call.deployment
    try:
        answer = await deployment.backend.send(call)
        if isinstance(answer, bytes):
            return answer
        first = await anext(answer, None)
    except Exception as exc:
        raise upstream_error(exc, deployment) from exc
    return EventStream(first, answer, deployment, framed=framed)
