"""A handler for an OpenAI-compatible provider that wants every request signed.

Use this shape when the wire format is standard but the authentication is not
an API key or OAuth2: here, an HMAC-SHA256 signature over the exact body. Each
request to ``{api_base}/chat/completions`` carries::

    X-Timestamp: <unix seconds>
    X-Signature: hex(HMAC-SHA256(secret, f"{timestamp}.{body}"))

The signature covers the bytes sent, so the body is serialised once and sent as
is. The handler streams too: with ``"stream": true`` the provider answers with
server-sent events, which become LiteLLM ``GenericStreamingChunk`` dicts (text,
tool-call deltas, finish reason, and usage if the caller asked for it with
``stream_options``).

Keep the secret out of the JSON: either ``"secret": "${HMAC_SIGNED_SECRET}"``
(config files expand environment variables) or ``"secret_env": "HMAC_SIGNED_SECRET"``
(read from the runner's environment when the handler is built). A missing
secret stops the handler from loading rather than sending unsigned requests.

Integration::

    "custom_llm_config": {
      "file_name": "hmac_signed.py",
      "class_name": "HmacSignedHandler",
      "init_kwargs": {"secret_env": "HMAC_SIGNED_SECRET"}
    }
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from litellm import CustomLLM, ModelResponse
from litellm.llms.custom_llm import CustomLLMError
from litellm.types.utils import GenericStreamingChunk

# LiteLLM's streaming switches travel in optional_params; the handler sets its own.
_NOT_FORWARDED = frozenset({"stream", "stream_options"})
_USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def sign(secret: str, timestamp: str, body: str) -> str:
    """The ``X-Signature`` for ``body`` sent at ``timestamp``."""
    message = f"{timestamp}.{body}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _upstream_message(body: bytes) -> str:
    """The error message in an upstream's error body, or the start of the body itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:500].decode(errors="replace")
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(error or data)[:500]


def _usage(data: Any) -> dict[str, int] | None:
    if not isinstance(data, dict):
        return None
    return {name: int(data.get(name) or 0) for name in _USAGE_FIELDS}


def _chunks(event: dict[str, Any]) -> Iterator[GenericStreamingChunk]:
    """The generic chunks for one OpenAI ``chat.completion.chunk`` event.

    LiteLLM reads every key of a generic chunk, so each is always present. A
    delta with several tool calls becomes one chunk per call (a chunk holds
    one); the usage-only event that ``include_usage`` adds has no choices.
    """
    usage = _usage(event.get("usage"))
    for choice in event.get("choices") or [{}]:
        delta = choice.get("delta") or {}
        finish_reason = choice.get("finish_reason")
        tool_calls = delta.get("tool_calls") or [None]
        for position, tool_call in enumerate(tool_calls):
            last = position == len(tool_calls) - 1
            yield GenericStreamingChunk(
                text=(delta.get("content") or "") if position == 0 else "",
                tool_use=tool_call,
                is_finished=bool(finish_reason) and last,
                finish_reason=finish_reason if last else None,
                usage=usage if last else None,
                index=choice.get("index", 0),
            )


class HmacSignedHandler(CustomLLM):
    """Sends OpenAI chat requests signed with HMAC-SHA256; streams or not."""

    def __init__(
        self, secret: str | None = None, secret_env: str | None = None, timeout: float = 30
    ) -> None:
        super().__init__()
        if secret_env is not None:
            secret = os.environ.get(secret_env) or secret
            if not secret:
                raise ValueError(f"environment variable {secret_env} (secret_env) is not set")
        if not secret:
            raise ValueError("give init_kwargs 'secret' or 'secret_env' (the signing key)")
        self._secret = secret
        self.timeout = timeout

    def _request(
        self,
        model: str,
        messages: list[dict[str, Any]],
        api_base: str,
        kwargs: dict[str, Any],
        stream: bool,
    ) -> tuple[str, str, dict[str, str]]:
        """URL, serialised body and signed headers for one chat request."""
        optional_params = kwargs.get("optional_params") or {}
        params = {k: v for k, v in optional_params.items() if k not in _NOT_FORWARDED}
        body: dict[str, Any] = {"model": model, "messages": messages, **params}
        if stream:
            body["stream"] = True
            if optional_params.get("stream_options"):
                body["stream_options"] = optional_params["stream_options"]
        text = json.dumps(body, separators=(",", ":"))
        timestamp = str(int(time.time()))
        headers = {
            **(kwargs.get("headers") or {}),
            "Content-Type": "application/json",
            "X-Timestamp": timestamp,
            "X-Signature": sign(self._secret, timestamp, text),
        }
        return f"{api_base.rstrip('/')}/chat/completions", text, headers

    async def acompletion(
        self, model: str, messages: list[dict[str, Any]], api_base: str, **kwargs: Any
    ) -> ModelResponse:
        url, body, headers = self._request(model, messages, api_base, kwargs, stream=False)
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(url, content=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise CustomLLMError(504, f"{url} did not answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise CustomLLMError(502, f"cannot reach {url}: {exc!r}") from exc
        if response.is_error:
            raise CustomLLMError(response.status_code, _upstream_message(response.content))
        try:
            return ModelResponse(**response.json())
        except (ValueError, TypeError) as exc:
            raise CustomLLMError(502, f"{url} answered with no chat completion: {exc!r}") from exc

    async def astreaming(
        self, model: str, messages: list[dict[str, Any]], api_base: str, **kwargs: Any
    ) -> AsyncIterator[GenericStreamingChunk]:
        url, body, headers = self._request(model, messages, api_base, kwargs, stream=True)
        try:
            async with (
                httpx.AsyncClient(timeout=self.timeout) as client,
                client.stream("POST", url, content=body, headers=headers) as response,
            ):
                if response.is_error:
                    message = _upstream_message(await response.aread())
                    raise CustomLLMError(response.status_code, message)
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, event names
                    data = line.removeprefix("data:").strip()
                    if data == "[DONE]":
                        return
                    for chunk in _chunks(json.loads(data)):
                        yield chunk
        except httpx.TimeoutException as exc:
            raise CustomLLMError(504, f"{url} stalled for {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise CustomLLMError(502, f"stream from {url} failed: {exc!r}") from exc
        except ValueError as exc:
            raise CustomLLMError(502, f"{url} sent an event that is not JSON: {exc!r}") from exc
