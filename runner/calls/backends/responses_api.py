"""Chat calls to an upstream that speaks only OpenAI's Responses API (``format:
openai-responses``).

LiteLLM translates chat requests to the Responses API and back, but its
``openai/responses/`` route (1.106) sends with a client of its own whatever
client it is given, past the runner's credentials and address checks. So this
backend borrows only LiteLLM's translation (``LiteLLMResponsesTransformation
Handler``): the request is built by it, sent by the runner over its shared
session exactly as a plain call is (:class:`PlainHttpBackend`: credentials,
401 renewal, fixed headers, answer limits, the same error categories), and the
answer, or each streamed event, translated back by it into chat completions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from litellm import ModelResponse
from litellm.completion_extras.litellm_responses_transformation.transformation import (
    LiteLLMResponsesTransformationHandler,
    OpenAiResponsesToChatCompletionStreamIterator,
)
from litellm.types.llms.openai import ResponsesAPIResponse

from runner.calls import answers
from runner.calls.backends.chunks import chat_chunks
from runner.calls.backends.plain_http import Events, PlainHttpBackend, read
from runner.calls.types import Answer, PreparedCall

_TRANSLATION = LiteLLMResponsesTransformationHandler()
# What LiteLLM's request carries for its own use, never sent.
_NOT_SENT = ("litellm_logging_obj", "client", "extra_headers")


class _CallRecord:
    """The stand-in for LiteLLM's logging object: the translation notes a call type on it."""

    call_type: str = ""


class ResponsesApiBackend:
    """Sends chat calls to ``{endpoint}/responses`` and answers in chat completions."""

    name = "openai_responses"

    def __init__(self, transport: PlainHttpBackend) -> None:
        self.transport = transport

    async def send(self, call: PreparedCall) -> Answer:
        params = {k: v for k, v in call.params.items() if k != "stream_options"}
        request = _TRANSLATION.transform_request(
            model=call.deployment.upstream_model,
            messages=call.messages,
            optional_params=params,
            litellm_params={},
            headers={},
            litellm_logging_obj=_CallRecord(),  # type: ignore[arg-type]
        )
        body = {k: _without_nulls(v) for k, v in request.items() if k not in _NOT_SENT}
        response = await self.transport.exchange(call, body)
        alias = call.deployment.alias
        try:
            if not call.stream:
                return _completion(await read(response), call, params)
        except BaseException:
            response.release()
            raise
        options = call.params.get("stream_options")
        usage = isinstance(options, dict) and options.get("include_usage") is True
        return chat_chunks(_translated(Events(response)), alias, usage)


def _completion(raw: bytes, call: PreparedCall, params: dict[str, Any]) -> bytes:
    """The Responses API answer in ``raw`` as a chat completion's JSON."""
    try:
        answer = ResponsesAPIResponse(**answers.json_object(raw))
        completion = _TRANSLATION.transform_response(
            model=call.deployment.alias,
            raw_response=answer,
            model_response=ModelResponse(),
            logging_obj=_CallRecord(),  # type: ignore[arg-type]
            request_data={},
            messages=call.messages,
            optional_params=params,
            litellm_params={},
            encoding=None,
        )
    except answers.BadAnswer:
        raise
    except Exception as exc:  # pydantic's refusal, or the translation's
        raise answers.BadAnswer(
            f"answered 200 with something other than a Responses API response: {exc}"[:400]
        ) from None
    completion.model = call.deployment.alias
    return completion.model_dump_json().encode()


async def _translated(events: Events) -> AsyncIterator[Any]:
    """The stream's Responses API events as LiteLLM's chat chunks, under one id, the role
    on the first, events that carry nothing skipped. An empty stream, or one the upstream
    reports failed, is refused; the connection is released however the stream ends."""
    translator = OpenAiResponsesToChatCompletionStreamIterator(None, sync_stream=False)
    stream_id = None
    try:
        event = await events.next()
        if event is None:
            raise answers.no_events()
        while event is not None:
            data = event[1]
            if data.get("type") in ("error", "response.failed"):
                raise answers.BadAnswer(f"reported a failure mid-stream: {_failure(data)}")
            chunk = translator.chunk_parser(data)
            if stream_id is None:
                stream_id = chunk.id
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
        choice.finish_reason or choice.delta.content or choice.delta.tool_calls
        for choice in chunk.choices
    )


def _failure(event: dict[str, Any]) -> str:
    error = event.get("error") or (event.get("response") or {}).get("error") or event
    message = error.get("message") if isinstance(error, dict) else None
    return str(message or error)[:300]


def _without_nulls(value: Any) -> Any:
    """``value`` without null fields (the translation leaves ``strict: null`` and the
    like on tools, which strict upstreams refuse)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
