"""Custom handlers called directly, without ``litellm.acompletion`` in between.

Most of a handler call's cost through LiteLLM is LiteLLM's per-call machinery
(logging objects, cost-map lookups, a thread-pool hop, response
re-validation), not the handler. This backend hands the handler's adapter
(:class:`~runner.handlers.adapter.HandlerAdapter`) the keyword arguments
LiteLLM would, and turns what the handler produces into OpenAI answers itself:
a ``ModelResponse`` becomes the body, and streamed chunks become
``chat.completion.chunk`` payloads (:mod:`runner.calls.backends.chunks`).

Handlers stay registered with LiteLLM as well, so ``RUNNER_FAST_PATH=false``
and in-process LiteLLM users still reach them through ``litellm.acompletion``.
One difference is deliberate: ``logging_obj`` here is a stand-in whose
methods do nothing, since building LiteLLM's costs what this backend saves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm import EmbeddingResponse, ModelResponse
from litellm.main import _get_encoding

from runner.calls.backends.chunks import chat_chunks
from runner.calls.backends.stand_ins import QuietLogging, ignore
from runner.calls.types import Answer, PreparedCall
from runner.handlers.adapter import HandlerAdapter
from runner.observe.records import note_usage, request_id


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
            "print_verbose": ignore,
            "acompletion": True,
            "logging_obj": QuietLogging(),
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
            # For handlers that take it (or **kwargs): the id of the caller's request.
            "request_id": request_id(),
        }
        alias = call.deployment.alias
        if call.stream:
            return chat_chunks(self.adapter.astreaming(**kwargs), alias, call.usage_chunk)
        response = await self.adapter.acompletion(**kwargs)
        note_usage(getattr(response, "usage", None))
        response.model = alias
        return response.model_dump_json().encode()


class HandlerEmbeddingBackend(HandlerBackend):
    """Calls a handler's ``aembedding`` (or ``embedding``) for an embedding model."""

    async def send(self, call: PreparedCall) -> Answer:
        texts = call.inputs["input"]
        response = await self.adapter.aembedding(
            **self._fixed,
            model=call.deployment.upstream_model,
            # LiteLLM hands handlers a list, whatever the caller sent.
            input=texts if isinstance(texts, list) else [texts],
            headers=call.headers,
            optional_params=dict(call.params),
            model_response=EmbeddingResponse(),
        )
        note_usage(getattr(response, "usage", None))
        response.model = call.deployment.alias
        return response.model_dump_json().encode()
