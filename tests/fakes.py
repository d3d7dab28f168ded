"""Stand-ins for the outside world: an OpenAI-compatible upstream and an OAuth2 token server.

Both are real ASGI apps served over loopback; they record what they receive so
tests can assert on the exact headers and bodies the runner sent.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Upstream:
    """An OpenAI-compatible chat endpoint.

    The upstream ``model`` name steers it: ``status-NNN`` answers with that status,
    ``slow`` sleeps ``slow_seconds``, ``broken-stream`` breaks off after one chunk.
    With ``accepted_tokens`` set, it answers 401 unless the request bears one of them.
    """

    received: list[Received] = field(default_factory=list)
    accepted_tokens: set[str] = field(default_factory=set)
    slow_seconds: float = 3.0

    def reset(self) -> None:
        self.received.clear()
        self.accepted_tokens.clear()

    @property
    def last(self) -> Received:
        return self.received[-1]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/{prefix:path}/chat/completions", self._chat, methods=["POST"]),
                Route("/chat/completions", self._chat, methods=["POST"]),
                Route("/{prefix:path}/generate", self._generate, methods=["POST"]),
            ]
        )

    async def _generate(self, request: Request) -> Response:
        """A proprietary, non-OpenAI format: the seed's ``/generate`` endpoint."""
        body = await request.json()
        self.received.append(Received(request.url.path, dict(request.headers), body))
        last = body["prompt"][-1]["content"]
        return JSONResponse(
            {
                "id": "gen-1",
                "output": f"generated: {last}",
                "input_tokens": 4,
                "output_tokens": 2,
                "total_tokens": 6,
            }
        )

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(Received(request.url.path, dict(request.headers), body))
        if self.accepted_tokens:
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            if bearer not in self.accepted_tokens:
                return _error(401, "invalid access token")
        model = body.get("model", "")
        if model.startswith("status-"):
            return _error(int(model.removeprefix("status-")), f"upstream says {model}")
        if model == "slow":
            await asyncio.sleep(self.slow_seconds)
        text = f"reply from {model}"
        if body.get("stream"):
            chunks = _stream(model, text, break_after=1 if model == "broken-stream" else None)
            return StreamingResponse(chunks, media_type="text/event-stream")
        return JSONResponse(chat_completion("chatcmpl-test", model, text, (3, 3)))


async def _stream(model: str, text: str, break_after: int | None = None):
    for index, word in enumerate(text.split(" ")):
        if index == break_after:
            raise RuntimeError("upstream dropped the connection mid-stream")
        chunk = {
            "id": "chatcmpl-test",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "finish_reason": None,
                    "delta": {"content": word if index == 0 else f" {word}"},
                }
            ],
        }
        yield f"data: {json.dumps(chunk)}\n\n"
    done = {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "delta": {}}],
    }
    yield f"data: {json.dumps(done)}\n\n"
    yield "data: [DONE]\n\n"


def chat_completion(id_: str, model: str, text: str, tokens: tuple[int, int]) -> dict[str, Any]:
    """An OpenAI chat-completion body with one answer and its usage."""
    prompt, completion = tokens
    return {
        "id": id_,
        "object": "chat.completion",
        "created": 1,
        "model": model,
        "choices": [
            {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "test", "code": str(status)}}, status_code=status
    )


@dataclass
class TokenServer:
    """An OAuth2 client-credentials token endpoint that counts and records requests."""

    client_id: str = "runner-client"
    client_secret: str = "s3cret-value"
    expires_in: int | None = 3600
    delay: float = 0.05
    requests: list[dict[str, str]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    def reset(self) -> None:
        self.requests.clear()
        self.issued.clear()
        self.expires_in = 3600

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/oauth2/token", self._token, methods=["POST"])])

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        self.requests.append(form)
        await asyncio.sleep(self.delay)  # widen the window in which requests could pile up
        if form.get("grant_type") != "client_credentials" or (
            form.get("client_id"),
            form.get("client_secret"),
        ) != (self.client_id, self.client_secret):
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        token = f"access-{len(self.issued) + 1}"
        self.issued.append(token)
        body: dict[str, Any] = {"access_token": token, "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return JSONResponse(body)
