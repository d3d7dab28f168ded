"""The caller-facing, OpenAI-compatible routes: models are addressed by alias."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from .. import json_body
from ..completions import complete, prepare
from ..errors import RunnerError
from ..registry import Registry
from .hang_up import HangUpWatch

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"])
DROPPED_PARAMS_HEADER = "x-runner-dropped-params"
# Names the dropped-parameters header may repeat; anything else a caller sent as a
# key (CR/LF, non-ASCII, kilobytes) is only counted.
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# Bytes of names the header lists before it says ", and N more" instead.
_DROPPED_NAMES_BYTES = 224


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
    body = json_body.object_body(raw)
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
    return result, {DROPPED_PARAMS_HEADER: dropped_params(call.dropped)} if call.dropped else {}


def dropped_params(names: Sequence[str]) -> str:
    """The dropped-parameters header: plain names, in order, within a few hundred bytes.

    A parameter name is any key of the caller's JSON, so it may hold CR/LF (which
    would break the response) or be kilobytes long (thousands of them make a
    header no client reads). Only plain names are repeated; the rest are counted.
    """
    shown: list[str] = []
    size = 0
    for name in names:
        if not _PARAMETER_NAME.fullmatch(name):
            continue
        if size + len(name) > _DROPPED_NAMES_BYTES:
            break
        shown.append(name)
        size += len(name) + 1
    listed = ",".join(shown)
    hidden = len(names) - len(shown)
    if not hidden:
        return listed
    return f"{listed}, and {hidden} more" if shown else f"and {hidden} more"


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
        raw = await _read_body(receive)
    except RunnerError as exc:  # a body over RUNNER_MAX_REQUEST_BYTES
        await send_error(send, exc)
        return
    watch = HangUpWatch(receive)
    try:
        await _respond(registry, raw, watch, send)
    except asyncio.CancelledError:
        if not watch.hung_up:
            raise
        watch.absorb()  # the caller is gone, and the work has unwound: nothing to send
    finally:
        watch.stop()


async def _respond(registry: Registry, raw: bytes, watch: HangUpWatch, send: Send) -> None:
    try:
        result, headers = await answer_chat(registry, raw)
    except RunnerError as exc:
        watch.stop()
        await send_error(send, exc)
        return
    except Exception:
        log.exception("unhandled error on POST /v1/chat/completions")
        watch.stop()
        await send_error(
            send, RunnerError("internal error in the runner; see its log", 500, "server_error")
        )
        return
    raw_headers = [(k.encode(), v.encode()) for k, v in headers.items()]
    if isinstance(result, bytes):
        watch.stop()
        await _send_json(send, 200, result, raw_headers)
        return
    raw_headers += [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await _stream(result, raw_headers, watch, send)


async def send_error(send: Send, error: RunnerError) -> None:
    """Answer with ``error`` in the OpenAI envelope, straight over ASGI."""
    headers = [(k.encode(), v.encode()) for k, v in error.response_headers().items()]
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
