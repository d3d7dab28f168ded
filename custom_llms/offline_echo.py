"""A handler that answers by itself, with no network: the smallest complete handler.

Use it to try handler integrations without a provider (the quickstart does), or
as the starting point for a handler of your own: it shows both methods the
runner calls, ``acompletion`` for whole answers and ``astreaming`` for streams,
and the exact shape of the chunks a stream yields.

It replies ``prefix`` plus the last user message (``"You said: hello"``),
honours ``max_tokens`` by keeping that many words (finish reason ``length``),
and counts words as tokens for ``usage``. ``api_base`` is ignored, so the
integration needs no ``endpoint``.

Integration::

    "custom_llm_config": {
      "file_name": "offline_echo.py",
      "class_name": "OfflineEchoHandler",
      "init_kwargs": {"prefix": "You said: "}
    }
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from litellm import CustomLLM, ModelResponse
from litellm.types.utils import GenericStreamingChunk


def _text(content: Any) -> str:
    """A message's text: a plain string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def _max_tokens(kwargs: dict[str, Any]) -> int | None:
    """The caller's max_tokens: the runner passes it as a keyword, LiteLLM in optional_params."""
    value = kwargs.get("max_tokens")
    if value is None:
        value = (kwargs.get("optional_params") or {}).get("max_tokens")
    return None if value is None else int(value)


class OfflineEchoHandler(CustomLLM):
    """Replies ``prefix`` + the last user message, cut to ``max_tokens`` words."""

    def __init__(self, prefix: str = "You said: ") -> None:
        super().__init__()
        self.prefix = prefix

    def _answer(
        self, messages: list[dict[str, Any]], kwargs: dict[str, Any]
    ) -> tuple[list[str], str, dict[str, int]]:
        """The reply's words, its finish reason, and usage (one token per word)."""
        last_user = next(
            (_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        words = f"{self.prefix}{last_user}".split()
        limit = _max_tokens(kwargs)
        finish_reason = "stop"
        if limit is not None and len(words) > limit:
            words, finish_reason = words[: max(limit, 0)], "length"
        prompt_tokens = sum(len(_text(m.get("content")).split()) for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(words),
            "total_tokens": prompt_tokens + len(words),
        }
        return words, finish_reason, usage

    async def acompletion(
        self, model: str, messages: list[dict[str, Any]], **kwargs: Any
    ) -> ModelResponse:
        words, finish_reason, usage = self._answer(messages, kwargs)
        return ModelResponse(
            id=f"echo-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=model,
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": " ".join(words)},
                    "finish_reason": finish_reason,
                }
            ],
            usage=usage,
        )

    async def astreaming(
        self, model: str, messages: list[dict[str, Any]], **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        """One chunk per word; the last one also ends the stream and carries the usage.

        LiteLLM reads every key of a chunk, so all six are always given, and it
        shows usage only to callers that ask (``stream_options.include_usage``).
        """
        words, finish_reason, usage = self._answer(messages, kwargs)
        pieces = [word if i == 0 else f" {word}" for i, word in enumerate(words)] or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            yield GenericStreamingChunk(
                text=piece,
                is_finished=last,
                finish_reason=finish_reason if last else None,
                usage=usage if last else None,
                index=0,
                tool_use=None,
            )
