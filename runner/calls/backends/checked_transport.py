"""The LiteLLM path's check of upstream answers, done where the bytes arrive.

LiteLLM hides what the fast path sees: a 200 that is not JSON becomes its
"InternalServerError" (a retried 503 here), an empty stream becomes a made-up
chunk with ``finish_reason: "stop"``, and nothing limits an answer's size. So
the httpx client LiteLLM drives sends through :class:`CheckedTransport`, which
decodes and counts every answer's bytes and holds successful ones to the rules
of :mod:`runner.calls.answers` before the OpenAI SDK sees them. What it
raises reaches the call path inside LiteLLM's exceptions, where
:func:`runner.calls.failures.answer_error` finds it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator

import httpx

from runner.calls import answers
from runner.calls.answers import AnswerTooLarge

# Dropped from an answer whose body is handed on decoded (and so of another length).
_ENCODING_HEADERS = frozenset({"content-encoding", "content-length"})


class CheckedTransport(httpx.AsyncBaseTransport):
    """Wraps ``inner``: answers longer than ``max_bytes``, or not chat completions (or
    embeddings, when that was asked), raise.

    With ``openai`` False (an endpoint speaking another wire format), a non-streamed
    answer need only be a JSON object, and a stream is only counted: formats stream
    differently (Ollama sends JSON lines, not events), and LiteLLM reads them.
    """

    def __init__(
        self, inner: httpx.AsyncBaseTransport, max_bytes: int, *, openai: bool = True
    ) -> None:
        self._inner = inner
        self._max_bytes = max_bytes
        self._openai = openai

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        response.request = request
        succeeded = 200 <= response.status_code < 300
        # Formats other than OpenAI's may ask for a stream in the URL (Gemini's
        # :streamGenerateContent), so there the answer's own type counts too.
        streamed = succeeded and (
            _asks_to_stream(request) or (not self._openai and _is_stream(response))
        )
        events = _EventCheck() if streamed and self._openai else None
        checked = httpx.Response(
            response.status_code,
            headers=[(k, v) for k, v in response.headers.items() if k not in _ENCODING_HEADERS],
            stream=_CheckedStream(response, self._max_bytes, events),
            extensions=response.extensions,
        )
        if not succeeded or streamed:
            return checked  # a stream is checked as the SDK reads it
        try:
            body = await checked.aread()
        finally:
            await checked.aclose()
        self._check_answer(request)(body)
        return httpx.Response(
            response.status_code,
            headers=checked.headers,
            content=body,
            extensions=response.extensions,
        )

    def _check_answer(self, request: httpx.Request) -> Callable[[bytes], object]:
        if not self._openai:
            return answers.json_object
        if request.url.path.endswith("/embeddings"):
            return answers.embeddings
        return answers.completion

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CheckedStream(httpx.AsyncByteStream):
    """The decoded body of ``response``, cut off past ``max_bytes``, events checked."""

    def __init__(
        self, response: httpx.Response, max_bytes: int, events: _EventCheck | None
    ) -> None:
        self._response = response
        self._max_bytes = max_bytes
        self._events = events

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for data in self._response.aiter_bytes():
            seen += len(data)
            if seen > self._max_bytes:
                raise AnswerTooLarge(self._max_bytes)
            if self._events is None:
                yield data
            else:  # line by line, so the events before a bad one still get through
                for line in self._events.lines(data):
                    yield line
        last = self._events.end() if self._events is not None else b""
        if last:
            yield last

    async def aclose(self) -> None:
        await self._response.aclose()


class _EventCheck:
    """Server-sent events as they arrive: each ``data:`` must be JSON, and one at least."""

    def __init__(self) -> None:
        self._partial: list[bytes] = []
        self._events = 0

    def lines(self, data: bytes) -> Iterator[bytes]:
        """The complete lines ``data`` ends, each checked; keeps the unfinished one."""
        *complete, rest = data.split(b"\n")
        for line in complete:
            line = b"".join([*self._partial, line])
            self._partial.clear()
            self._check(line)
            yield line + b"\n"
        if rest:
            self._partial.append(rest)

    def end(self) -> bytes:
        """The last line, if the stream did not end it; raises if no event came at all."""
        last = b"".join(self._partial)
        self._check(last)
        if not self._events:
            raise answers.no_events()
        return last

    def _check(self, line: bytes) -> None:
        if not line.startswith(b"data:"):
            return
        payload = line[5:].strip()
        if payload != b"[DONE]":
            answers.chunk(payload)
            self._events += 1
        elif not self._events:  # the SDK stops reading here: this is the end
            raise answers.no_events()


def _asks_to_stream(request: httpx.Request) -> bool:
    """Whether the SDK asked for a stream: the one thing only the request body says."""
    try:
        body = json.loads(request.content)
    except (ValueError, RecursionError, httpx.RequestNotRead):
        return False
    return isinstance(body, dict) and body.get("stream") is True


def _is_stream(response: httpx.Response) -> bool:
    kind = response.headers.get("content-type", "")
    return kind.startswith(("text/event-stream", "application/x-ndjson"))
