"""Built-in demo models, so a fresh clone answers with no network: an echo chat model,
embeddings made from a hash of the text, and a rerank by shared words.

They speak OpenAI's wire format (and the Cohere-style rerank) under ``/demo/v1``
and are reached like any other upstream: ``config/demo.json`` points an
integration at them.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from runner.json_body import object_body

router = APIRouter(prefix="/demo/v1", tags=["demo"], include_in_schema=False)


@router.post("/chat/completions")
async def echo(request: Request) -> Response:
    body = object_body(await request.body())
    text = f"echo: {_last_user_text(body.get('messages') or [])}"
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, int) and max_tokens > 0:
        text = " ".join(text.split(" ")[:max_tokens])
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "created": int(time.time()),
        "model": body.get("model", "echo"),
    }
    if body.get("stream"):
        return StreamingResponse(_chunks(base, text), media_type="text/event-stream")
    words = len(text.split())
    return Response(
        json.dumps(
            {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": words,
                    "completion_tokens": words,
                    "total_tokens": 2 * words,
                },
            }
        ),
        media_type="application/json",
    )


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


async def _chunks(base: dict[str, Any], text: str) -> AsyncIterator[str]:
    for index, word in enumerate(text.split(" ")):
        delta = {"content": word if index == 0 else f" {word}"}
        if index == 0:
            delta["role"] = "assistant"
        yield _event(base, delta, None)
    yield _event(base, {}, "stop")
    yield "data: [DONE]\n\n"


def _event(base: dict[str, Any], delta: dict[str, Any], finish: str | None) -> str:
    chunk = {
        **base,
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(chunk)}\n\n"


@router.post("/embeddings")
async def embeddings(request: Request) -> dict[str, Any]:
    """Eight numbers per text, from its SHA-256: the same text always gets the same vector."""
    body = object_body(await request.body())
    texts = body.get("input")
    texts = texts if isinstance(texts, list) else [texts]
    data = [
        {"object": "embedding", "index": index, "embedding": _vector(str(text))}
        for index, text in enumerate(texts)
    ]
    return {"object": "list", "data": data, "model": body.get("model", "embed"), "usage": {}}


def _vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [round(byte / 255, 4) for byte in digest[:8]]


@router.post("/rerank")
async def rerank(request: Request) -> dict[str, Any]:
    """Documents scored by the share of the query's words they contain, best first."""
    body = object_body(await request.body())
    query = set(str(body.get("query", "")).lower().split())
    documents = body.get("documents") if isinstance(body.get("documents"), list) else []
    results = []
    for index, document in enumerate(documents):  # type: ignore[arg-type]
        text = document.get("text", "") if isinstance(document, dict) else str(document)
        shared = len(query & set(text.lower().split()))
        results.append({"index": index, "relevance_score": shared / max(len(query), 1)})
    results.sort(key=lambda result: -result["relevance_score"])
    top_n = body.get("top_n")
    return {"id": f"rerank-{uuid.uuid4().hex}", "results": results[:top_n] if top_n else results}
