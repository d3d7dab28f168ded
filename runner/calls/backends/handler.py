"""Custom handlers called directly, without ``litellm.acompletion`` in between.

Most of a handler call's cost through LiteLLM is LiteLLM's per-call machinery
(logging objects, cost-map lookups, a thread-pool hop, response
re-validation), not the handler. This backend hands the handler's adapter
(:class:`~runner.handlers.adapter.HandlerAdapter`) the keyword arguments
LiteLLM would, and turns what the handler produces into OpenAI answers itself:
a ``ModelResponse`` becomes the body, ``GenericStreamingChunk`` dicts become
``chat.completion.chunk`` payloads shaped as LiteLLM shapes them (the role on
the first delta, ``finish_reason`` on the last, usage in a chunk of its own
when the caller asked with ``stream_options.include_usage``).

Handlers stay registered with LiteLLM as well, so ``RUNNER_FAST_PATH=false``
and in-process LiteLLM users still reach them through ``litellm.acompletion``.
One difference is deliberate: ``logging_obj`` here is a stand-in whose
methods do nothing, since building LiteLLM's costs what this backend saves.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from litellm import ModelResponse
from litellm.main import _get_encoding
from litellm.types.utils import ModelResponseStream

from runner.calls.types import Answer, PreparedCall
from runner.handlers.adapter import HandlerAdapter


class _QuietLogging:
    """What handlers get as ``logging_obj``: every method LiteLLM's has, doing nothing."""

    def __getattr__(self, name: str) -> Any:
        return _ignore


def _ignore(*args: Any, **kwargs: Any) -> None:
    return None


class _LazyEncoding:
    """What handlers get as ``encoding``: LiteLLM's tokenizer, loaded on first use.

    tiktoken's encoding takes ~40 MB; few handlers count tokens with it, so it
    is loaded only when one does.
    """

    def __getattr__(self, name: str) -> Any:
        return getattr(_get_encoding(), name)


_ENCODING = _LazyEncoding()


class HandlerBackend:
    """Calls one handler integration's adapter as LiteLLM would, minus LiteLLM."""

    name = "handler"

    def __init__(self, adapter: HandlerAdapter, api_base: str | None, timeout: float) -> None:
        self.adapter = adapter
        self._fixed: Mapping[str, Any] = {
            "api_base": api_base,
            "print_verbose": _ignore,
            "acompletion": True,
            "logging_obj": _QuietLogging(),
            "litellm_params": {"custom_llm_provider": adapter.provider, "api_base": api_base},
            "logger_fn": None,
            "timeout": timeout,
            "custom_prompt_dict": {},
            "client": None,
            "encoding": _ENCODING,
        }

    async def send(self, call: PreparedCall) -> Answer:
        kwargs = {
            **self._fixed,
            "model": call.deployment.upstream_model,
            "messages": call.messages,
            "headers": call.headers,
            "optional_params": dict(call.params),
            "model_response": ModelResponse(),
        }
        alias = call.deployment.alias
        if call.stream:
            options = call.params.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            return _payloads(self.adapter.astreaming(**kwargs), alias, usage)
        response = await self.adapter.acompletion(**kwargs)
        response.model = alias
        return response.model_dump_json().encode()


async def _payloads(
    chunks: AsyncIterator[Any], alias: str, include_usage: bool
) -> AsyncIterator[bytes]:
    """OpenAI chunk payloads for a handler's stream; closes the handler's stream at the end."""
    head = {
        "id": f"chatcmpl-{uuid.uuid4()}",
        "created": int(time.time()),
        "model": alias,
        "object": "chat.completion.chunk",
    }
    role_sent = False
    usage = None
    try:
        async for chunk in chunks:
            if isinstance(chunk, ModelResponseStream):
                chunk.model = alias
                role_sent = True
                yield chunk.model_dump_json(exclude_none=True).encode()
                continue
            usage = chunk.get("usage") or usage
            choice = _choice(chunk, first=not role_sent)
            if choice is not None:
                role_sent = role_sent or "role" in choice["delta"]
                yield _dump({**head, "choices": [choice]})
        if include_usage and usage is not None:
            yield _dump({**head, "choices": [], "usage": usage})
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]


def _choice(chunk: Mapping[str, Any], *, first: bool) -> dict[str, Any] | None:
    """The choice a GenericStreamingChunk stands for, or None when it carries nothing."""
    delta: dict[str, Any] = {}
    if chunk["text"]:
        delta["content"] = chunk["text"]
    if chunk.get("tool_use"):
        delta.setdefault("content", "")
        delta["tool_calls"] = [chunk["tool_use"]]
    finished = bool(chunk["is_finished"])
    if not delta and not finished:
        return None
    if first and delta:
        delta["role"] = "assistant"
    choice: dict[str, Any] = {"index": chunk.get("index") or 0, "delta": delta}
    if finished:
        choice["finish_reason"] = chunk["finish_reason"] or "stop"
    return choice


def _dump(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()
