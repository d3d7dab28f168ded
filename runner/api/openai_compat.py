"""The caller-facing, OpenAI-compatible routes: models are addressed by alias."""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
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
    return await answer_chat(registry, await request.body())


async def answer_chat(registry: Registry, raw: bytes) -> Response:
    """The response to one chat-completions request body; RunnerError for a refusal."""
    body = _json_object(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RunnerError(
            "'model' is required: the alias of a model from GET /v1/models.",
            param="model",
            code="missing_model",
        )
    call = prepare(registry.resolve(model), body)
    result = await complete(call)
    headers = {DROPPED_PARAMS_HEADER: ",".join(call.dropped)} if call.dropped else None
    if isinstance(result, bytes):
        return Response(result, media_type="application/json", headers=headers)
    return StreamingResponse(result, media_type="text/event-stream", headers=headers)


async def serve_chat_completions(
    registry: Registry, scope: Scope, receive: Receive, send: Send
) -> None:
    """``POST /v1/chat/completions`` as a bare ASGI endpoint.

    Every call of every caller comes through here, and FastAPI's routing and
    middleware stack cost more than the work itself (about half the CPU of a
    call); so :class:`~runner.api.RunnerApp` sends this one route here first,
    with the same errors the app's handlers would produce.
    """
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    try:
        response = await answer_chat(registry, b"".join(chunks))
    except RunnerError as exc:
        response = JSONResponse(exc.to_body(), status_code=exc.status_code)
    except Exception:
        log.exception("unhandled error on POST /v1/chat/completions")
        error = RunnerError("internal error in the runner; see its log", 500, "server_error")
        response = JSONResponse(error.to_body(), status_code=500)
    await response(scope, receive, send)


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
