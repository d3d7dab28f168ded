"""LiteLLM's streamed chunks as OpenAI ``chat.completion.chunk`` payloads.

Handlers stream ``GenericStreamingChunk`` dicts or ``ModelResponseStream``
objects, and so do LiteLLM's stream translators (such as the Responses API's):
each becomes a payload shaped as LiteLLM shapes them, the role on the first
delta, empty chunks skipped, ``finish_reason`` on the last, and usage in a
final chunk with ``choices: []``, as OpenAI sends it, when the caller asked
with ``stream_options.include_usage``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

from litellm.types.utils import ModelResponseStream

from runner.observe.records import note_usage


async def chat_chunks(
    chunks: AsyncIterator[Any], alias: str, include_usage: bool
) -> AsyncIterator[bytes]:
    """OpenAI chunk payloads for a stream of LiteLLM chunks; closes ``chunks`` at the end."""
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
                note_usage(getattr(chunk, "usage", None))
                chunk.model = alias
                role_sent = True
                yield chunk.model_dump_json(exclude_none=True).encode()
                continue
            usage = chunk.get("usage") or usage
            choice = _choice(chunk, first=not role_sent)
            if choice is not None:
                role_sent = role_sent or "role" in choice["delta"]
                yield _dump({**head, "choices": [choice]})
        note_usage(usage)
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
