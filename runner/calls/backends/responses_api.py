"""OpenAI's Responses API (``format: openai-responses``), translated by LiteLLM.

LiteLLM's own route for it (``openai/responses/…``, 1.106) sends with a client
of its own whatever client it is given, past the runner's credentials and
address checks; its translation (``LiteLLMResponsesTransformationHandler``) is
used here instead, and the runner sends (:mod:`runner.calls.backends.translated`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from litellm import ModelResponse
from litellm.completion_extras.litellm_responses_transformation.transformation import (
    LiteLLMResponsesTransformationHandler,
    OpenAiResponsesToChatCompletionStreamIterator,
)
from litellm.types.llms.openai import ResponsesAPIResponse

from runner.calls.backends.stand_ins import QuietLogging
from runner.calls.types import PreparedCall

_TRANSLATION = LiteLLMResponsesTransformationHandler()
# What LiteLLM's request carries for its own use, never sent.
_NOT_SENT = ("litellm_logging_obj", "client", "extra_headers")
# Streamed events that say the response failed.
_FAILURES = ("error", "response.failed")


class ResponsesExchange:
    """One chat call as a Responses API request (``POST {endpoint}/responses``)."""

    def __init__(self, call: PreparedCall) -> None:
        self.call = call
        self.headers: dict[str, str] = {}
        # The Responses API has no stream_options: usage comes in response.completed.
        self.params = {k: v for k, v in call.params.items() if k != "stream_options"}
        request = _TRANSLATION.transform_request(
            model=call.deployment.upstream_model,
            messages=call.messages,
            optional_params=self.params,
            litellm_params={},
            headers={},
            litellm_logging_obj=QuietLogging(),  # type: ignore[arg-type]
        )
        self.body = {k: _without_nulls(v) for k, v in request.items() if k not in _NOT_SENT}
        self._stream: OpenAiResponsesToChatCompletionStreamIterator | None = None

    def completion(self, raw: bytes, headers: Mapping[str, str]) -> ModelResponse:
        return _TRANSLATION.transform_response(
            model=self.call.deployment.alias,
            raw_response=ResponsesAPIResponse.model_validate_json(raw),
            model_response=ModelResponse(),
            logging_obj=QuietLogging(),  # type: ignore[arg-type]
            request_data={},
            messages=self.call.messages,
            optional_params=self.params,
            litellm_params={},
            encoding=None,
        )

    def chunk(self, event: dict[str, Any]) -> Any:
        if self._stream is None:
            self._stream = OpenAiResponsesToChatCompletionStreamIterator(None, sync_stream=False)
        return self._stream.chunk_parser(event)

    def failure(self, event: dict[str, Any]) -> str | None:
        if event.get("type") not in _FAILURES:
            return None
        error = event.get("error") or (event.get("response") or {}).get("error") or event
        message = error.get("message") if isinstance(error, dict) else None
        return str(message or error)


def _without_nulls(value: Any) -> Any:
    """``value`` without null fields (the translation leaves ``strict: null`` and the
    like on tools, which strict upstreams refuse)."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value
