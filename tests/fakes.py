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
    ``failures[model]`` lists statuses to answer first, one per request, before
    answering normally (a 429 carries ``Retry-After: retry_after``). Answers and
    stream chunks carry the id ``chatcmpl-<last message's content>``.
    """

    received: list[Received] = field(default_factory=list)
    accepted_tokens: set[str] = field(default_factory=set)
    slow_seconds: float = 3.0
    failures: dict[str, list[int]] = field(default_factory=dict)
    retry_after: str | None = None
    in_flight: int = 0
    max_in_flight: int = 0
    streams_open: int = 0
    chunks_sent: int = 0
    # Bumped by reset(): a slow call left over from an earlier test, still sleeping
    # here after its caller gave up, must not count in (or out of) the next test's
    # in_flight figures.
    generation: int = 0

    def reset(self) -> None:
        self.received.clear()
        self.accepted_tokens.clear()
        self.failures.clear()
        self.retry_after = None
        self.in_flight = self.max_in_flight = 0
        self.streams_open = self.chunks_sent = 0
        self.generation += 1

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
        generation = self.generation
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self._answer(request)
        finally:
            if generation == self.generation:
                self.in_flight -= 1

    def _long_stream(self):
        return _long_stream_chunks(self)

    async def _answer(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(Received(request.url.path, dict(request.headers), body))
        model = body.get("model", "")
        if self.failures.get(model):
            status = self.failures[model].pop(0)
            response = _error(status, f"scripted {status}")
            if status == 429 and self.retry_after is not None:
                response.headers["retry-after"] = self.retry_after
            return response
        if self.accepted_tokens:
            bearer = request.headers.get("authorization", "").removeprefix("Bearer ")
            if bearer not in self.accepted_tokens:
                return _error(401, "invalid access token")
        if model == "long-stream":
            return StreamingResponse(self._long_stream(), media_type="text/event-stream")
        if model == "moderated":
            answer = chat_completion(f"chatcmpl-{_last_content(body)}", model, "", (3, 0))
            answer["choices"][0]["finish_reason"] = "content_filter"
            answer["choices"][0]["message"]["refusal"] = "I can't help with that."
            return JSONResponse(answer)
        if model == "redirect":
            return Response(status_code=307, headers={"location": "http://169.254.169.254/v1"})
        if model.startswith("status-"):
            return _error(int(model.removeprefix("status-")), f"upstream says {model}")
        if model == "slow":
            await asyncio.sleep(self.slow_seconds)  # the slowness tests ask for: not a wait
        text = f"reply from {model}"
        id_ = f"chatcmpl-{_last_content(body)}"
        if body.get("stream"):
            broken = 1 if model == "broken-stream" else None
            options = body.get("stream_options") or {}
            usage = (3, 3) if options.get("include_usage") else None
            chunks = _stream(model, text, break_after=broken, id_=id_, usage=usage)
            return StreamingResponse(chunks, media_type="text/event-stream")
        return JSONResponse(chat_completion(id_, model, text, (3, 3)))


async def _long_stream_chunks(upstream: Upstream):
    """200 chunks, 10 ms apart; counts what it sent and whether it is still open."""
    upstream.streams_open += 1
    try:
        for index in range(200):
            chunk = {
                "id": "chatcmpl-long",
                "object": "chat.completion.chunk",
                "created": 1,
                "model": "long-stream",
                "choices": [
                    {"index": 0, "finish_reason": None, "delta": {"content": f"w{index} "}}
                ],
            }
            yield f"data: {json.dumps(chunk)}\n\n"
            upstream.chunks_sent += 1
            await asyncio.sleep(0.01)  # the pacing of the stream: not a wait
        yield "data: [DONE]\n\n"
    finally:
        upstream.streams_open -= 1


def _last_content(body: dict[str, Any]) -> str:
    messages = body.get("messages") or [{}]
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else None
    return content if isinstance(content, str) else "test"


async def _stream(
    model: str,
    text: str,
    break_after: int | None = None,
    id_: str = "chatcmpl-test",
    usage: tuple[int, int] | None = None,
):
    for index, word in enumerate(text.split(" ")):
        if index == break_after:
            raise RuntimeError("upstream dropped the connection mid-stream")
        chunk = {
            "id": id_,
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
        "id": id_,
        "object": "chat.completion.chunk",
        "created": 1,
        "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "delta": {}}],
    }
    yield f"data: {json.dumps(done)}\n\n"
    if usage is not None:  # as OpenAI sends it when asked: a last chunk with no choices
        prompt, completion = usage
        counts = {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion}  # fmt: skip
        final = {"id": id_, "object": "chat.completion.chunk", "created": 1, "model": model,
                 "choices": [], "usage": counts}  # fmt: skip
        yield f"data: {json.dumps(final)}\n\n"
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
