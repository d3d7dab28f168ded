"""Fake upstreams for the example handlers in ``custom_llms/``, each speaking its own protocol.

Like :mod:`tests.fakes` they are real ASGI apps served over loopback that record
what they receive, so tests see the exact requests a handler sent. Each checks
what its real counterpart would (the session ids, the HMAC signature) rather
than trusting the handler under test.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .fakes import Received, chat_completion


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "code": str(status)}}, status_code=status)


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    return next((str(m["content"]) for m in reversed(messages) if m["role"] == "user"), "")


@dataclass
class GenerateProvider:
    """The proprietary ``POST /generate`` API: prompt in, ``output`` and token counts out.

    ``fail_status`` makes it answer with that status; ``delay`` makes it sleep first.
    """

    received: list[Received] = field(default_factory=list)
    fail_status: int | None = None
    delay: float = 0.0

    def reset(self) -> None:
        self.received.clear()
        self.fail_status = None
        self.delay = 0.0

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/generate", self._generate, methods=["POST"])])

    async def _generate(self, request: Request) -> Response:
        body = await request.json()
        self.received.append(Received(request.url.path, dict(request.headers), body))
        await asyncio.sleep(self.delay)  # the slowness tests ask for: not a wait
        if self.fail_status is not None:
            return _error(self.fail_status, f"generate refused with {self.fail_status}")
        return JSONResponse(
            {
                "id": "gen-42",
                "output": f"generated: {_last_user_text(body['prompt'])}",
                "input_tokens": 4,
                "output_tokens": 3,
                "total_tokens": 7,
            }
        )


@dataclass
class SessionProvider:
    """The session protocol: open a session, post messages as a job, poll the job.

    A job answers ``pending`` to its first ``polls_before_done`` polls, then
    ``done`` (or ``failed`` with ``fail_jobs``). With ``token`` set, every
    request must bear ``Authorization: Bearer <token>``, as a real one would.
    """

    received: list[Received] = field(default_factory=list)
    polls_before_done: int = 3
    fail_jobs: bool = False
    token: str | None = None
    sessions: set[str] = field(default_factory=set)
    polls: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def reset(self) -> None:
        self.received.clear()
        self.polls_before_done = 3
        self.fail_jobs = False
        self.token = None
        self.sessions.clear()
        self.polls.clear()
        self.jobs.clear()

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/sessions", self._open, methods=["POST"]),
                Route("/sessions/{session_id}/messages", self._submit, methods=["POST"]),
                Route("/jobs/{job_id}", self._poll, methods=["GET"]),
            ]
        )

    async def _record(self, request: Request) -> dict[str, Any]:
        body = await request.json() if request.method == "POST" else {}
        self.received.append(Received(request.url.path, dict(request.headers), body))
        return body

    def _refused(self, request: Request) -> Response | None:
        if self.token and request.headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "missing or wrong bearer token")
        return None

    async def _open(self, request: Request) -> Response:
        await self._record(request)
        if refused := self._refused(request):
            return refused
        session_id = f"s-{len(self.sessions) + 1}"
        self.sessions.add(session_id)
        return JSONResponse({"session_id": session_id})

    async def _submit(self, request: Request) -> Response:
        body = await self._record(request)
        if refused := self._refused(request):
            return refused
        if request.path_params["session_id"] not in self.sessions:
            return _error(404, "no such session")
        job_id = f"j-{len(self.jobs) + 1}"
        self.jobs[job_id] = body
        self.polls[job_id] = 0
        return JSONResponse({"job_id": job_id})

    async def _poll(self, request: Request) -> Response:
        await self._record(request)
        if refused := self._refused(request):
            return refused
        job_id = request.path_params["job_id"]
        if job_id not in self.jobs:
            return _error(404, "no such job")
        self.polls[job_id] += 1
        if self.polls[job_id] <= self.polls_before_done:
            return JSONResponse({"status": "pending"})
        if self.fail_jobs:
            return JSONResponse({"status": "failed", "error": "model overloaded"})
        text = f"session reply to {_last_user_text(self.jobs[job_id]['messages'])}"
        usage = {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}
        return JSONResponse({"status": "done", "result": {"text": text, "usage": usage}})


@dataclass
class SignedProvider:
    """An OpenAI-compatible ``/chat/completions`` that answers 401 unless the request is signed.

    The signature is hex HMAC-SHA256 over ``f"{X-Timestamp}.{raw body}"`` keyed
    with ``secret``; a timestamp more than ``max_skew`` seconds off is refused
    too, as a real provider would to stop replays.
    """

    secret: str = "test-signing-secret"
    max_skew: int = 300
    received: list[Received] = field(default_factory=list)

    def reset(self) -> None:
        self.received.clear()

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/chat/completions", self._chat, methods=["POST"])])

    def _verify(self, request: Request, raw: bytes) -> str | None:
        """Why the request's signature is unacceptable, or None if it is fine."""
        timestamp = request.headers.get("x-timestamp", "")
        signature = request.headers.get("x-signature", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > self.max_skew:
            return "missing or stale X-Timestamp"
        message = timestamp.encode() + b"." + raw
        expected = hmac.new(self.secret.encode(), message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "bad X-Signature"
        return None

    async def _chat(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw)
        self.received.append(Received(request.url.path, dict(request.headers), body))
        if problem := self._verify(request, raw):
            return _error(401, problem)
        model = body["model"]
        text = f"signed reply to {_last_user_text(body['messages'])}"
        if body.get("stream"):
            usage = (body.get("stream_options") or {}).get("include_usage", False)
            events = _sse_tool_call(model) if body.get("tools") else _sse(model, text, usage)
            return StreamingResponse(events, media_type="text/event-stream")
        return JSONResponse(chat_completion("chatcmpl-signed", model, text, (6, 4)))


def _event(model: str, choices: list[dict[str, Any]], **extra: Any) -> str:
    chunk = {"id": "chatcmpl-signed", "object": "chat.completion.chunk", "created": 1}
    return f"data: {json.dumps({**chunk, 'model': model, 'choices': choices, **extra})}\n\n"


async def _sse(model: str, text: str, include_usage: bool) -> AsyncIterator[str]:
    """OpenAI-style events: one per word, a finishing one, the usage one if asked, [DONE]."""
    for index, word in enumerate(text.split(" ")):
        delta = {"content": word if index == 0 else f" {word}"}
        yield _event(model, [{"index": 0, "delta": delta, "finish_reason": None}])
    yield _event(model, [{"index": 0, "delta": {}, "finish_reason": "stop"}])
    if include_usage:
        usage = {"prompt_tokens": 6, "completion_tokens": 4, "total_tokens": 10}
        yield _event(model, [], usage=usage)
    yield "data: [DONE]\n\n"


async def _sse_tool_call(model: str) -> AsyncIterator[str]:
    """A streamed call of ``get_weather``: its name first, then its arguments in two pieces."""
    call = {"index": 0, "id": "call_1", "type": "function"}
    pieces = [
        {**call, "function": {"name": "get_weather", "arguments": ""}},
        {"index": 0, "function": {"arguments": '{"city":'}},
        {"index": 0, "function": {"arguments": '"Paris"}'}},
    ]
    for piece in pieces:
        yield _event(model, [{"index": 0, "delta": {"tool_calls": [piece]}, "finish_reason": None}])
    yield _event(model, [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}])
    yield "data: [DONE]\n\n"
