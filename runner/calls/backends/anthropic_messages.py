"""Anthropic's Messages API (``format: anthropic``), translated by LiteLLM's ``AnthropicConfig``.

The same translation ``litellm.acompletion`` applies (parameters mapped, system
prompt and tools moved where Anthropic wants them, ``max_tokens`` defaulted,
beta headers a feature needs), without its per-call machinery; the runner
sends (:mod:`runner.calls.backends.translated`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import httpx
from litellm import ModelResponse
from litellm.llms.anthropic.chat.handler import ModelResponseIterator
from litellm.llms.anthropic.chat.transformation import (
    ANTHROPIC_TOOL_NAME_REVERSE_MAP_KEY,
    AnthropicConfig,
)

from runner.calls.backends.stand_ins import QuietLogging
from runner.calls.types import PreparedCall

_CONFIG = AnthropicConfig()
# Headers LiteLLM's translation sets that the runner sends its own way (the key comes
# from the integration's credentials; the body's type from the transport).
_NOT_SENT = frozenset({"x-api-key", "content-type", "accept"})
_UNUSED_KEY = "unused"  # the translation wants a key to put in x-api-key, dropped above


class AnthropicExchange:
    """One chat call as an Anthropic Messages request (``POST {endpoint}/v1/messages``)."""

    def __init__(self, call: PreparedCall) -> None:
        self.call = call
        model = call.deployment.upstream_model
        params = {k: v for k, v in call.params.items() if k not in ("stream", "stream_options")}
        # As LiteLLM does with allowed_openai_params: what it cannot map, but the model
        # was declared to accept, goes to Anthropic as it came.
        mappable = set(_CONFIG.get_supported_openai_params(model))
        self.params = {
            **{k: v for k, v in params.items() if k not in mappable},
            **_CONFIG.map_openai_params(
                {k: v for k, v in params.items() if k in mappable}, {}, model, drop_params=False
            ),
        }
        # A note from the mapping to the answer's reader, never sent (LiteLLM pops it too).
        self.json_mode = bool(self.params.pop("json_mode", False))
        self.litellm_params: dict[str, Any] = {}
        # The translation rewrites messages in place; the caller's stay as they came.
        self.messages = copy.deepcopy(call.messages)
        self.body = _CONFIG.transform_request(
            model, self.messages, self.params, self.litellm_params, {}
        )
        if call.stream:
            self.body["stream"] = True
        headers = _CONFIG.validate_environment(
            headers={},
            model=model,
            messages=self.messages,
            optional_params=self.params,
            litellm_params=self.litellm_params,
            api_key=_UNUSED_KEY,
        )
        self.headers = {k: v for k, v in headers.items() if k.lower() not in _NOT_SENT}
        self._stream: ModelResponseIterator | None = None

    def completion(self, raw: bytes, headers: Mapping[str, str]) -> ModelResponse:
        return _CONFIG.transform_response(
            model=self.call.deployment.upstream_model,
            raw_response=httpx.Response(200, content=raw, headers=dict(headers)),
            model_response=ModelResponse(),
            logging_obj=QuietLogging(),  # type: ignore[arg-type]
            request_data=self.body,
            messages=self.messages,
            optional_params=self.params,
            litellm_params=self.litellm_params,
            encoding=None,
            json_mode=self.json_mode,
        )

    def chunk(self, event: dict[str, Any]) -> Any:
        if self._stream is None:
            self._stream = ModelResponseIterator(
                None,
                sync_stream=False,
                json_mode=self.json_mode,
                tool_name_reverse_map=self.litellm_params.get(ANTHROPIC_TOOL_NAME_REVERSE_MAP_KEY),
            )
        return self._stream.chunk_parser(event)

    def failure(self, event: dict[str, Any]) -> str | None:
        if event.get("type") != "error":
            return None
        error = event.get("error")
        return str(error.get("message") if isinstance(error, dict) else error)
