"""The caller-facing, OpenAI-compatible routes: models are addressed by alias.

``POST /v1/chat/completions``, ``/v1/completions``, ``/v1/embeddings`` and
``/v1/rerank`` each serve one model type (:mod:`runner.calls.operations`);
``/v1/messages`` serves chat models in Anthropic's shape
(:mod:`runner.api.messages`). All of them are answered by the
:class:`CallRoutes` middleware, ahead of FastAPI; ``GET /v1/models`` is a
plain FastAPI route.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from runner.api import messages
from runner.api.answering import answer
from runner.api.hang_up import HangUpWatch
from runner.calls.operations import BY_ROUTE, Operation
from runner.errors import RunnerError, send_error, send_json
from runner.integrations.registry import Registry

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"])
Answerer = Callable[
    [Registry, bytes], Awaitable[tuple[bytes | AsyncIterator[bytes], dict[str, str]]]
]


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    """Every alias, with the integration that serves it, its ``type`` (``chat``,
    ``completion``, ``embedding`` or ``rerank``) and how it is reached: the endpoint's
    wire ``format``, or ``handler``."""
    registry: Registry = request.app.state.registry
    return {
        "object": "list",
        "data": [
            {
                "id": d.alias,
                "object": "model",
                "created": 0,
                "owned_by": d.integration,
                "type": d.type,
                "format": "handler" if r.spec.custom_llm_config else r.spec.format,
            }
            for r in registry.integrations()
            for d in r.deployments
        ],
    }


class CallRoutes:
    """ASGI middleware serving the call routes ahead of FastAPI's routing.

    Every call of every caller comes through here, and FastAPI's routing and
    request objects cost more than the work itself (about half the CPU of a
    call); so these routes are answered here, with the same errors the app's
    handlers would produce, and everything else passes on to ``app``. Their
    OpenAPI entries are written by hand (:mod:`runner.api.openapi`).
    """

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state
        self._answerers: dict[str, tuple[Answerer, Callable[[RunnerError], bytes] | None]] = {
            route: (_answerer(operation), None) for route, operation in BY_ROUTE.items()
        }
        self._answerers[messages.ROUTE] = (messages.answer, messages.error_body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            served = self._answerers.get(scope["path"])
            if served is not None:
                await serve_call(self.state.registry, *served, scope, receive, send)
                return
        await self.app(scope, receive, send)


def _answerer(operation: Operation) -> Answerer:
    async def answer_operation(
        registry: Registry, raw: bytes
    ) -> tuple[bytes | AsyncIterator[bytes], dict[str, str]]:
        return await answer(registry, operation, raw)

    return answer_operation


async def serve_call(
    registry: Registry,
    answerer: Answerer,
    error_body: Callable[[RunnerError], bytes] | None,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """One call route as a bare ASGI endpoint; ``error_body`` shapes refusals for routes
    that do not use OpenAI's error envelope."""
    try:
        raw = await _read_body(receive)
    except RunnerError as exc:  # a body over RUNNER_MAX_REQUEST_BYTES
        await _send_error(send, exc, error_body)
        return
    watch = HangUpWatch(receive)
    try:
        await _respond(registry, answerer, error_body, raw, watch, send)
    except asyncio.CancelledError:
        if not watch.hung_up:
            raise
        watch.absorb()  # the caller is gone, and the work has unwound: nothing to send
    finally:
        watch.stop()


async def _send_error(
    send: Send, error: RunnerError, error_body: Callable[[RunnerError], bytes] | None
) -> None:
    if error_body is None:
        await send_error(send, error)
        return
    headers = [(k.encode(), v.encode()) for k, v in error.response_headers().items()]
    await send_json(send, error.status_code, error_body(error), headers)


async def _respond(
    registry: Registry,
    answerer: Answerer,
    error_body: Callable[[RunnerError], bytes] | None,
    raw: bytes,
    watch: HangUpWatch,
    send: Send,
) -> None:
    try:
        result, headers = await answerer(registry, raw)
    except RunnerError as exc:
        watch.stop()
        await _send_error(send, exc, error_body)
        return
    except Exception:
        log.exception("unhandled error on a call route")
        watch.stop()
        await _send_error(
            send,
            RunnerError("internal error in the runner; see its log", 500, "server_error"),
            error_body,
        )
        return
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    if isinstance(result, bytes):
        watch.stop()
        await send_json(send, 200, result, raw_headers)
        return
    raw_headers += [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await _stream(result, raw_headers, watch, send)


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _stream(
    events: AsyncIterator[bytes], headers: list[tuple[bytes, bytes]], watch: HangUpWatch, send: Send
) -> None:
    """Send events until they end; a hang-up meanwhile cancels the task (see ``watch``).

    The first event is taken before the response starts. It is ready (the call path
    awaited it), and taking it starts the generators beneath: a generator closed
    before it started never runs its ``finally``, which releases the upstream's
    connection, so a hang-up while the headers go out would leak it.
    """
    try:
        first = await anext(events, None)  # type: ignore[call-overload]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if first is not None:
            await send({"type": "http.response.body", "body": first, "more_body": True})
            async for event in events:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        watch.stop()
        await send({"type": "http.response.body", "body": b""})
    finally:
        await events.aclose()  # type: ignore[attr-defined]
