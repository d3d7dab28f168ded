"""Calls through ``litellm.acompletion``: what every call takes with ``RUNNER_FAST_PATH=false``.

LiteLLM is imported by the time a deployment gets this backend
(:mod:`runner.lazy_litellm`), so each call only looks it up. The keyword
arguments that do not depend on the request are fixed at registration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from runner import lazy_litellm
from runner.calls.types import Answer, PreparedCall
from runner.observe.records import note_usage


class LiteLLMBackend:
    """Sends a prepared call with LiteLLM's ``function`` (``acompletion``, or
    ``aembedding`` for embedding models), with the deployment's fixed ``kwargs``."""

    name = "litellm"

    def __init__(self, kwargs: Mapping[str, Any], function: str = "acompletion") -> None:
        self.kwargs = kwargs
        self.function = function

    async def send(self, call: PreparedCall) -> Answer:
        kwargs = {**self.kwargs, **call.inputs, **call.params}
        if call.headers:
            kwargs["extra_headers"] = {**kwargs.get("extra_headers", {}), **call.headers}
        result = await getattr(lazy_litellm.litellm(), self.function)(**kwargs)
        alias = call.deployment.alias
        if call.stream:
            return _payloads(result, alias, call.usage_chunk)
        note_usage(getattr(result, "usage", None))
        result.model = alias
        return result.model_dump_json().encode()


async def _payloads(stream: Any, alias: str, usage_chunk: bool) -> AsyncIterator[bytes]:
    """The chunks' payloads; the usage chunk (no choices) only if the caller asked."""
    try:
        async for chunk in stream:
            usage = getattr(chunk, "usage", None)
            if usage:
                note_usage(usage)
                if not usage_chunk:
                    if not any(_carries(choice) for choice in chunk.choices):
                        continue  # LiteLLM's usage chunk, which the caller did not ask for
                    chunk.usage = None
            chunk.model = alias
            yield chunk.model_dump_json(exclude_none=True).encode()
    finally:
        await stream.aclose()


def _carries(choice: Any) -> bool:
    delta = choice.delta
    return bool(choice.finish_reason or delta.content or delta.tool_calls)
