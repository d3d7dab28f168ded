"""The caller-facing, OpenAI-compatible routes: models are addressed by alias."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ..completions import complete, prepare
from ..errors import RunnerError
from ..registry import Registry

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"])
DROPPED_PARAMS_HEADER = "x-runner-dropped-params"


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    registry: Registry = request.app.state.registry
    return {
        "object": "list",
        "data": [
            {"id": d.alias, "object": "model", "created": 0, "owned_by": d.integration}
            for d in registry.deployments()
        ],
    }


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    """OpenAI chat completions, by alias. (Served by :func:`serve_chat_completions`.)"""
    registry: Registry = request.app.state.registry
    result, headers = await answer_chat(registry, await request.body())
    if isinstance(result, bytes):
        return Response(result, media_type="application/json", headers=headers)
    return StreamingResponse(result, media_type="text/event-stream", headers=headers)


async def answer_chat(
    registry: Registry, raw: bytes
) -> tuple[bytes | AsyncIterator[bytes], dict[str, str]]:
    """The answer to one request body (JSON, or SSE events) and extra response headers."""
    body = _json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RunnerError(
            "'model' is required, as a string: the alias of a model from GET /v1/models.",
            422,
            param="model",
            code="missing_model",
        )
    call = prepare(registry.resolve(model), body)
    result = await complete(call)
    return result, {DROPPED_PARAMS_HEADER: ",".join(call.dropped)} if call.dropped else {}


async def serve_chat_completions(
    registry: Registry, scope: Scope, receive: Receive, send: Send
) -> None:
    """``POST /v1/chat/completions`` as a bare ASGI endpoint.

    Every call of every caller comes through here, and FastAPI's routing and
    middleware stack cost more than the work itself (about half the CPU of a
    call); so :class:`~runner.api.RunnerApp` sends this one route here first,
    with the same errors the app's handlers would produce.
    """
    try:
        result, headers = await answer_chat(registry, await _read_body(receive))
    except RunnerError as exc:
        await send_error(send, exc)
        return
    except Exception:
        log.exception("unhandled error on POST /v1/chat/completions")
        await send_error(
            send, RunnerError("internal error in the runner; see its log", 500, "server_error")
        )
        return
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    if isinstance(result, bytes):
        await _send_json(send, 200, result, raw_headers)
        return
    raw_headers += [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": raw_headers})
    await _stream(result, receive, send)


async def send_error(send: Send, error: RunnerError) -> None:
    """Answer with ``error`` in the OpenAI envelope, straight over ASGI."""
    headers = [(k.encode(), v.encode()) for k, v in error.headers().items()]
    await _send_json(send, error.status_code, json.dumps(error.to_body()).encode(), headers)


async def _send_json(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]]
) -> None:
    headers = [
        *headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def _stream(events: AsyncIterator[bytes], receive: Receive, send: Send) -> None:
    """Send events until they end or the caller hangs up (then stop reading upstream).

    The hang-up watch starts after the first event, keeping its cost off the
    time to first byte.
    """
    hung_up: asyncio.Future[Any] | None = None
    try:
        async for event in events:
            if hung_up is None:
                hung_up = asyncio.ensure_future(receive())  # resolves only on http.disconnect
            elif hung_up.done():
                break
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    finally:
        if hung_up is not None:
            hung_up.cancel()
        await events.aclose()  # type: ignore[attr-defined]


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunnerError(
            f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise RunnerError("The request body must be a JSON object.", code="invalid_json")
    return body
