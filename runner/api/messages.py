"""``POST /v1/messages``: Anthropic's Messages API in front of every chat model.

Anthropic SDK users (and the tools built on it) call any alias, whatever its
upstream speaks: the request is translated to an OpenAI chat request by
LiteLLM's Anthropic adapter, run as any chat call is (same deployment,
limits, retries, logs), and its answer, or its stream, translated back into
Anthropic's message and events. Refusals come in Anthropic's error shape,
so the SDK's exceptions carry the runner's message.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

from runner import json_body, lazy_litellm
from runner.api.answering import DROPPED_PARAMS_HEADER, dropped_params, prepared, run
from runner.calls.operations import CHAT
from runner.errors import RunnerError
from runner.integrations.registry import Registry
from runner.observe import records

log = logging.getLogger(__name__)
ROUTE = "/v1/messages"
_adapter: Any = None
_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
_ROLES = ("user", "assistant")
# Anthropic's error types, by the status the runner answers with.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    529: "overloaded_error",
}


def error_body(error: RunnerError) -> bytes:
    """A refusal as Anthropic sends one: ``{"type": "error", "error": {type, message}}``."""
    records.note_error(error.type, error.code)  # as RunnerError.to_body does on every route
    kind = _ERROR_TYPES.get(error.status_code, "api_error")
    body: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": error.message}}
    request_id = records.request_id()
    if request_id is not None:
        body["request_id"] = request_id  # where Anthropic puts its own
    return json.dumps(body).encode()


async def answer(
    registry: Registry, raw: bytes
) -> tuple[bytes | AsyncIterator[bytes], dict[str, str]]:
    """The Anthropic message (or its events) answering one request body."""
    body = json_body.object_body(raw)
    _check_messages(body.get("messages"))
    adapter = _adapter or await _load_adapter()
    try:
        request, tool_names = adapter.translate_completion_input_params_with_tool_mapping(
            dict(body)
        )
    except Exception as exc:  # the adapter's own checks, or a shape it cannot read
        raise RunnerError(
            f"the request is not a Messages API request the runner can translate: {str(exc)[:300]}",
            400,
            code="untranslatable_request",
        ) from None
    request = _without_nulls(request)  # type: ignore[arg-type]
    if request.get("stream") is True:
        request["stream_options"] = {"include_usage": True}
    call = prepared(registry, CHAT, request, ROUTE)
    alias = call.deployment.alias
    result = await run(call, framed=False)
    headers = {DROPPED_PARAMS_HEADER: dropped_params(call.dropped)} if call.dropped else {}
    if isinstance(result, bytes):
        from litellm import ModelResponse

        completion = json.loads(result)
        # Anthropic's message always has usage; some upstreams and handlers send none.
        completion.setdefault("usage", _NO_USAGE)
        try:
            message = adapter.translate_completion_output_params(
                ModelResponse(**completion), tool_name_mapping=tool_names
            )
        except Exception as exc:
            log.warning("translating %r's answer to an Anthropic message failed: %r", alias, exc)
            raise RunnerError(
                f"the answer of {alias!r} could not be translated to an Anthropic message",
                502,
                "upstream_connection_error",
                "untranslatable_answer",
            ) from None
        return json.dumps({**dict(message or {}), "model": alias}).encode(), headers
    return _Events(result, alias, tool_names), headers


async def _load_adapter() -> Any:
    """LiteLLM's Anthropic adapter, imported on the first call (in a thread: importing
    LiteLLM takes seconds, see :mod:`runner.lazy_litellm`)."""
    global _adapter
    await lazy_litellm.load()

    def build() -> Any:
        from litellm.llms.anthropic.pass_through.adapters.transformation import (
            AnthropicAdapter,
        )

        return AnthropicAdapter()

    _adapter = await asyncio.to_thread(build)
    return _adapter


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise RunnerError(
            "'messages' must be a non-empty list, such as "
            '[{"role": "user", "content": "Hello"}].',
            400,
            param="messages",
            code="invalid_messages",
        )
    for index, message in enumerate(messages):
        if (
            not isinstance(message, dict)
            or message.get("role") not in _ROLES
            or not isinstance(message.get("content"), str | list)
        ):
            raise RunnerError(
                f"'messages[{index}]' must be an object with a 'role' of 'user' or 'assistant' "
                "and a 'content' string or list of content blocks.",
                400,
                param=f"messages[{index}]",
                code="invalid_messages",
            )


def _without_nulls(request: Mapping[str, Any]) -> dict[str, Any]:
    """The translated request without the null fields the adapter leaves on messages
    (``thinking_blocks``), which strict OpenAI-compatible upstreams refuse."""
    messages = [
        {k: v for k, v in m.items() if v is not None or k == "content"} for m in request["messages"]
    ]
    return {**request, "messages": messages}


class _Events:
    """A chat stream's chunk payloads as Anthropic's server-sent events.

    A failure after the first event ends the stream with Anthropic's ``error``
    event. Closing closes the chat stream beneath (and so releases its slots
    and the upstream connection), started or not.
    """

    def __init__(
        self, payloads: AsyncIterator[bytes], alias: str, tool_names: dict[str, str]
    ) -> None:
        self._payloads = payloads
        self._events = _adapter.translate_completion_output_params_streaming(
            _chunks(payloads), model=alias, tool_name_mapping=tool_names
        )
        self._done = False

    def __aiter__(self) -> _Events:
        return self

    async def __anext__(self) -> bytes:
        if self._done:
            raise StopAsyncIteration
        try:
            return await anext(self._events)  # type: ignore[arg-type]
        except StopAsyncIteration:
            await self.aclose()
            raise
        except RunnerError as exc:
            await self.aclose()
            return b"event: error\ndata: " + error_body(exc) + b"\n\n"
        except Exception as exc:
            log.warning("translating a stream to Anthropic events failed: %r", exc)
            await self.aclose()
            error = RunnerError("the stream could not be translated to Anthropic events", 502)
            return b"event: error\ndata: " + error_body(error) + b"\n\n"

    async def aclose(self) -> None:
        self._done = True
        await self._payloads.aclose()  # type: ignore[attr-defined]


async def _chunks(payloads: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    from litellm.types.utils import ModelResponseStream

    async for payload in payloads:
        yield ModelResponseStream(**json.loads(payload))
