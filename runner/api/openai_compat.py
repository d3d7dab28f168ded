"""The caller-facing, OpenAI-compatible routes: models are addressed by alias."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from ..completions import complete, prepare
from ..errors import RunnerError
from ..registry import Registry

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
    body = await _json_object(request)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RunnerError(
            "'model' is required: the alias of a model from GET /v1/models.",
            param="model",
            code="missing_model",
        )
    registry: Registry = request.app.state.registry
    call = prepare(registry.resolve(model), body)
    result = await complete(call)
    headers = {DROPPED_PARAMS_HEADER: ",".join(call.dropped)} if call.dropped else None
    if isinstance(result, bytes):
        return Response(result, media_type="application/json", headers=headers)
    return StreamingResponse(result, media_type="text/event-stream", headers=headers)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunnerError(
            f"The request body is not valid JSON: {exc}", code="invalid_json"
        ) from None
    if not isinstance(body, dict):
        raise RunnerError("The request body must be a JSON object.", code="invalid_json")
    return body
