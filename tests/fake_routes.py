"""A loopback OpenAI-compatible server for the routes beyond chat, written from OpenAI's
API reference (and Cohere's, for rerank), recording what it receives.

- ``POST /v1/completions``: ``"completed: <prompt>"``, whole or streamed.
- ``POST /v1/embeddings``: one vector per input, ``[len(text), index, 0.5]`` (or as
  many numbers as ``dimensions`` asks), as floats or, with ``encoding_format:
  base64``, as base64 float32s, as OpenAI sends them.
- ``POST /v1/rerank``: each document scored by the words it shares with the query,
  best first, cut to ``top_n``.
- ``POST /v1/chat/completions``: ``"chat: <last message>"``; for the model
  ``odd-choices``, a completion whose message content is a number.

A model named ``status-NNN`` answers with that status in OpenAI's error envelope.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

from starlette.responses import JSONResponse, Response, StreamingResponse

from .fake_formats import FakeProvider


class OpenAIRoutesProvider(FakeProvider):
    def error(self, status: int) -> Response:
        error = {"message": f"upstream refused with {status}", "type": "server_error"}
        return JSONResponse({"error": error}, status_code=status)

    def answer(self, path: str, body: dict[str, Any]) -> Response:
        model = str(body.get("model", ""))
        if model.startswith("status-"):
            return self.error(int(model.removeprefix("status-")))
        if path.endswith("/completions") and not path.endswith("/chat/completions"):
            return _completion(model, body)
        if path.endswith("/embeddings"):
            return JSONResponse(_embeddings(model, body))
        if path.endswith("/rerank"):
            return JSONResponse(_rerank(body))
        if path.endswith("/chat/completions") and model == "odd-choices":
            odd = [{"index": 0, "message": {"role": "assistant", "content": 5}}]
            return JSONResponse({"id": "chatcmpl-0", "object": "chat.completion", "choices": odd})
        if path.endswith("/chat/completions"):
            text = f"chat: {body['messages'][-1]['content']}"
            return JSONResponse(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 1,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4},
                }
            )
        return self.error(404)


def _completion(model: str, body: dict[str, Any]) -> Response:
    prompt = body["prompt"] if isinstance(body["prompt"], str) else body["prompt"][0]
    text = f"completed: {prompt}"
    base = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": model}
    if not body.get("stream"):
        choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
        usage = {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}
        return JSONResponse({**base, "choices": [choice], "usage": usage})

    async def events() -> AsyncIterator[str]:
        for i, word in enumerate(text.split(" ")):
            piece = word if i == 0 else f" {word}"
            choice = {"index": 0, "text": piece, "finish_reason": None, "logprobs": None}
            yield f"data: {json.dumps({**base, 'choices': [choice]})}\n\n"
        end = {"index": 0, "text": "", "finish_reason": "stop", "logprobs": None}
        yield f"data: {json.dumps({**base, 'choices': [end]})}\n\ndata: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def vector(text: str, index: int, dimensions: int | None = None) -> list[float]:
    """The fake's embedding of ``text``, the ``index``-th input."""
    numbers = [float(len(text)), float(index), 0.5]
    return (numbers * 10)[: dimensions or 3]


def _embeddings(model: str, body: dict[str, Any]) -> dict[str, Any]:
    texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
    data = []
    for index, text in enumerate(texts):
        numbers = vector(str(text), index, body.get("dimensions"))
        embedding: Any = numbers
        if body.get("encoding_format") == "base64":
            embedding = base64.b64encode(struct.pack(f"<{len(numbers)}f", *numbers)).decode()
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def _rerank(body: dict[str, Any]) -> dict[str, Any]:
    query = set(body["query"].lower().split())
    scored = []
    for index, document in enumerate(body["documents"]):
        text = document if isinstance(document, str) else document.get("text", "")
        shared = len(query & set(text.lower().split()))
        scored.append({"index": index, "relevance_score": shared / max(len(query), 1)})
    scored.sort(key=lambda r: -r["relevance_score"])
    top = body.get("top_n") or len(scored)
    return {
        "id": "rerank-1",
        "results": scored[:top],
        "meta": {"billed_units": {"search_units": 1}},
    }
