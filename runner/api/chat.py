"""The caller-facing, OpenAI-compatible routes: models are addressed by alias."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import State
from starlette.types import ASGIApp, Receive, Scope, Send

from runner import json_body
from runner.api.hang_up import HangUpWatch
from runner.calls.prepare import prepare
from runner.calls.run import complete
from runner.errors import RunnerError, send_error, send_json
from runner.integrations.registry import Registry

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai"])
PATH = "/v1/chat/completions"
DROPPED_PARAMS_HEADER = "x-runner-dropped-params"
# Names the dropped-parameters header may repeat; anything else a caller sent as a
# key (CR/LF, non-ASCII, kilobytes) is only counted.
_PARAMETER_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
# Bytes of names the header lists before it says ", and N more" instead.
_DROPPED_NAMES_BYTES = 224


@router.get("/models")
async def list_models(request: Request) -> dict[str, Any]:
    """Every alias, with the integration that serves it, the kind of model (``chat``) and
    how it is reached: the endpoint's wire ``format``, or ``handler``."""
    registry: Registry = request.app.state.registry
    return {
        "object": "list",
        "data": [
            {
                "id": d.alias,
                "object": "model",
                "created": 0,
                "owned_by": d.integration,
                "type": "chat",
                "format": "handler" if r.spec.custom_llm_config else r.spec.format,
            }
            for r in registry.integrations()
            for d in r.deployments
        ],
    }


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
    try:
        result = await complete(call)
    except RunnerError as exc:
        log_failure(call.deployment.alias, call.deployment.integration, exc)
        raise
    return result, {DROPPED_PARAMS_HEADER: dropped_params(call.dropped)} if call.dropped else {}


def log_failure(alias: str, integration: str, error: RunnerError) -> None:
    """One line per failed call, at info: what failed, how, and where in a handler."""
    log.info(
        "call to %r (integration %r) failed: %d %s (%s)%s: %s",
        alias,
        integration,
        error.status_code,
        error.type,
        error.code,
        f" at {error.origin}" if error.origin else "",
        error.message.splitlines()[0][:300] if error.message else "",
    )


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


class ChatCompletions:
    """ASGI middleware serving ``POST /v1/chat/completions`` ahead of FastAPI's routing.

    Every call of every caller comes through here, and FastAPI's routing and
    request objects cost more than the work itself (about half the CPU of a
    call); so this one route is answered here, with the same errors the app's
    handlers would produce, and everything else passes on to ``app``. The
    route's OpenAPI entry is written by hand (:func:`document`).
    """

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == PATH and scope["method"] == "POST":
            await serve_chat_completions(self.state.registry, scope, receive, send)
        else:
            await self.app(scope, receive, send)


async def serve_chat_completions(
    registry: Registry, scope: Scope, receive: Receive, send: Send
) -> None:
    """``POST /v1/chat/completions`` as a bare ASGI endpoint."""
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


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (the app's OpenAPI document) with the chat route, which FastAPI never sees."""
    error = {"$ref": "#/components/schemas/ErrorEnvelope"}
    schema["paths"][PATH] = {
        "post": {
            "tags": ["openai"],
            "summary": "Chat completions, by alias",
            "description": "OpenAI's chat completions; `model` is an alias from GET /v1/models. "
            "Parameters the model does not accept are dropped and listed in the "
            f"`{DROPPED_PARAMS_HEADER}` response header.",
            "operationId": "chat_completions",
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _REQUEST_SCHEMA}},
            },
            "responses": {
                "200": {
                    "description": "The completion, or its server-sent events when streaming",
                    "content": {
                        "application/json": {"schema": {"type": "object"}},
                        "text/event-stream": {"schema": {"type": "string"}},
                    },
                },
                "default": {
                    "description": "An error",
                    "content": {"application/json": {"schema": error}},
                },
            },
        }
    }
    return schema


_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["model", "messages"],
    "properties": {
        "model": {"type": "string", "description": "An alias from GET /v1/models"},
        "messages": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["role"],
                "properties": {"role": {"type": "string"}},
            },
        },
        "stream": {"type": "boolean"},
        "stream_options": {"type": "object"},
        "metadata": {
            "type": "object",
            "description": "Values the integration's custom_header_mapping sends as headers",
        },
    },
}
