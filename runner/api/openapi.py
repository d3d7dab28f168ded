"""The OpenAPI entries of the call routes, which FastAPI never sees (:class:`CallRoutes`
answers them ahead of its routing), written by hand and tested against the app."""

from __future__ import annotations

from typing import Any

from runner.api.answering import DROPPED_PARAMS_HEADER
from runner.api.messages import ROUTE as MESSAGES_ROUTE

_MODEL = {"type": "string", "description": "An alias from GET /v1/models"}
_TEXT = {
    "oneOf": [
        {"type": "string"},
        {"type": "array", "items": {"type": "string"}},
        {"type": "array", "items": {"type": "integer"}},
        {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}},
    ]
}
_METADATA = {
    "type": "object",
    "description": "Values the integration's custom_header_mapping sends as headers",
}
_MESSAGES = {
    "type": "array",
    "minItems": 1,
    "items": {"type": "object", "required": ["role"], "properties": {"role": {"type": "string"}}},
}

# Per route: summary, description, operation id, request schema, whether it streams.
_ROUTES: dict[str, tuple[str, str, str, dict[str, Any], bool]] = {
    "/v1/chat/completions": (
        "Chat completions, by alias",
        "OpenAI's chat completions, for chat models.",
        "chat_completions",
        {
            "required": ["model", "messages"],
            "properties": {"messages": _MESSAGES, "stream": {"type": "boolean"}},
        },
        True,
    ),
    "/v1/completions": (
        "Text completions, by alias",
        "OpenAI's legacy text completions, for completion models.",
        "completions",
        {"required": ["model", "prompt"], "properties": {"prompt": _TEXT}},
        True,
    ),
    "/v1/embeddings": (
        "Embeddings, by alias",
        "OpenAI's embeddings, for embedding models; `encoding_format` float or base64.",
        "embeddings",
        {
            "required": ["model", "input"],
            "properties": {
                "input": _TEXT,
                "dimensions": {"type": "integer"},
                "encoding_format": {"type": "string", "enum": ["float", "base64"]},
            },
        },
        False,
    ),
    "/v1/rerank": (
        "Rerank, by alias",
        "Documents ranked by relevance to a query (the Cohere-style shape), for rerank models.",
        "rerank",
        {
            "required": ["model", "query", "documents"],
            "properties": {
                "query": {"type": "string"},
                "documents": {"type": "array", "items": {}},
                "top_n": {"type": "integer"},
            },
        },
        False,
    ),
    MESSAGES_ROUTE: (
        "Anthropic Messages, by alias",
        "Anthropic's Messages API for any chat model, whatever its upstream speaks; the "
        "runner API key may come as `x-api-key`. Errors come in Anthropic's shape.",
        "messages",
        {
            "required": ["model", "messages", "max_tokens"],
            "properties": {
                "messages": _MESSAGES,
                "max_tokens": {"type": "integer"},
                "system": {},
                "stream": {"type": "boolean"},
            },
        },
        True,
    ),
}


def document(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` (the app's OpenAPI document) with the call routes added."""
    error = {"$ref": "#/components/schemas/ErrorEnvelope"}
    for path, (summary, description, operation_id, request, streams) in _ROUTES.items():
        request_schema = {
            "type": "object",
            **request,
            "properties": {"model": _MODEL, **request["properties"], "metadata": _METADATA},
        }
        answers: dict[str, Any] = {"application/json": {"schema": {"type": "object"}}}
        if streams:
            answers["text/event-stream"] = {"schema": {"type": "string"}}
        schema["paths"][path] = {
            "post": {
                "tags": ["openai"] if path != MESSAGES_ROUTE else ["anthropic"],
                "summary": summary,
                "description": f"{description} `model` is an alias from GET /v1/models. "
                "Parameters the model does not accept are dropped and listed in the "
                f"`{DROPPED_PARAMS_HEADER}` response header.",
                "operationId": operation_id,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": request_schema}},
                },
                "responses": {
                    "200": {
                        "description": "The answer"
                        + (", or its server-sent events when streaming" if streams else ""),
                        "content": answers,
                    },
                    "default": {
                        "description": "An error",
                        "content": {"application/json": {"schema": error}},
                    },
                },
            }
        }
    return schema
