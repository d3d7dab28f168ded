"""Chat calls to an endpoint of another wire format, translated by LiteLLM, sent by the runner.

``litellm.acompletion`` spends milliseconds per call on its own machinery
(logging objects, cost lookups, parameter checks, re-validation), and for some
formats sends with a client of its own. The translation itself is a small part
of it, and LiteLLM exposes it per provider. So a format with a
:class:`Translation` here is reached without ``acompletion``: the translation
builds the request, the runner sends it as a plain call is sent
(:class:`~runner.calls.backends.plain_http.PlainHttpBackend`: credentials,
401 renewal, fixed headers, answer limits, the same error categories), and the
translation turns the answer, or each streamed event, back into chat
completions, shaped as every other backend's (:mod:`runner.calls.backends.chunks`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Protocol

from runner.calls import answers
from runner.calls.backends.chunks import chat_chunks
from runner.calls.backends.plain_http import Events, PlainHttpBackend, read
from runner.calls.types import Answer, PreparedCall
from runner.observe.records import note_usage


class Exchange(Protocol):
    """One call in a format: what to send, and how to read what comes back."""

    body: dict[str, Any]
    headers: dict[str, str]
    """Headers the format asks for on this call (sent after the credentials, before the
    integration's fixed headers)."""

    def completion(self, raw: bytes, headers: Mapping[str, str]) -> Any:
        """The answer's body as a LiteLLM ``ModelResponse``; raises if it is not one."""
        ...

    def chunk(self, event: dict[str, Any]) -> Any:
        """One streamed event as a LiteLLM ``ModelResponseStream``."""
        ...

    def failure(self, event: dict[str, Any]) -> str | None:
        """What went wrong, when a streamed event reports a failure; else None."""
        ...


Translation = Callable[[PreparedCall], Exchange]


class TranslatedBackend:
    """Sends a deployment's chat calls in its format, over the runner's shared session."""

    def __init__(self, name: str, transport: PlainHttpBackend, translate: Translation) -> None:
        self.name = name
        self.transport = transport
        self.translate = translate

    async def send(self, call: PreparedCall) -> Answer:
        exchange = self.translate(call)
        response = await self.transport.exchange(call, exchange.body, exchange.headers)
        alias = call.deployment.alias
        try:
            if not call.stream:
                raw = await read(response)
                completion = _read_completion(exchange, raw, response.headers)
                note_usage(getattr(completion, "usage", None))
                completion.model = alias
                return completion.model_dump_json().encode()  # type: ignore[no-any-return]
        except BaseException:
            response.release()
            raise
        return chat_chunks(_chunks(Events(response), exchange), alias, call.usage_chunk)


def _read_completion(exchange: Exchange, raw: bytes, headers: Mapping[str, str]) -> Any:
    """The translation reads the body once; only when it refuses is the body checked
    again, so that junk gets the usual refusal quoting what came."""
    try:
        return exchange.completion(raw, headers)
    except Exception as exc:  # the translation's refusal: not an answer in this format
        answers.json_object(raw)  # not even a JSON object: BadAnswer quoting what came
        raise answers.BadAnswer(
            f"answered 200 with something the format's translation could not read: {exc}"[:400]
        ) from None


async def _chunks(events: Events, exchange: Exchange) -> AsyncIterator[Any]:
    """The stream's events as LiteLLM's chat chunks, under one id, the role on the first,
    events that carry nothing skipped. An empty stream, or one the upstream reports
    failed, is refused; the connection is released however the stream ends."""
    stream_id = None
    try:
        event = await events.next()
        if event is None:
            raise answers.no_events()
        while event is not None:
            failure = exchange.failure(event[1])
            if failure is not None:
                raise answers.BadAnswer(f"reported a failure mid-stream: {failure[:300]}")
            chunk = exchange.chunk(event[1])
            if stream_id is None:
                stream_id = chunk.id
                if chunk.choices:
                    chunk.choices[0].delta.role = "assistant"
                yield chunk
            elif _carries_something(chunk):
                chunk.id = stream_id
                yield chunk
            event = await events.next()
    finally:
        events.response.release()


def _carries_something(chunk: Any) -> bool:
    return bool(getattr(chunk, "usage", None)) or any(
        choice.finish_reason
        or choice.delta.content
        or choice.delta.tool_calls
        or getattr(choice.delta, "reasoning_content", None)
        for choice in chunk.choices
    )
