"""A handler for a provider whose API is not OpenAI-shaped: one request, one JSON answer.

Use this shape when the provider takes a single HTTP request per completion but
names things its own way. Here the provider is called with::

    POST {api_base}/generate
    {"prompt": [...chat messages...], "temperature": 0.7, "max_tokens": 1024}

and answers::

    {"id": "...", "output": "...", "input_tokens": 3, "output_tokens": 5, "total_tokens": 8}

The handler translates both ways and turns every failure into a ``CustomLLMError``
that carries the status a caller should see: the upstream's own status for an
HTTP error, 502 for an unreachable upstream or an answer it cannot read, 504
when the upstream is too slow. ``headers`` (the integration's auth, mapped and
fixed headers) are sent with the request, so ``authentication_type`` works as
for any other integration.

Integration::

    "custom_llm_config": {
      "file_name": "proprietary_generate.py",
      "class_name": "ProprietaryGenerateHandler",
      "init_kwargs": {"timeout": 30}
    }
"""

from __future__ import annotations

from typing import Any

import httpx
from litellm import CustomLLM, ModelResponse
from litellm.llms.custom_llm import CustomLLMError

# Sent when the caller does not choose; the provider requires both fields.
DEFAULT_TEMPERATURE = 0.7
DEFAULT_MAX_TOKENS = 1024


def _param(kwargs: dict[str, Any], name: str, default: Any = None) -> Any:
    """A caller parameter: the runner passes it as a keyword, LiteLLM in ``optional_params``."""
    if kwargs.get(name) is not None:
        return kwargs[name]
    value = (kwargs.get("optional_params") or {}).get(name)
    return default if value is None else value


def _upstream_message(response: httpx.Response) -> str:
    """The error message in an upstream's error body, or the start of the body itself."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:500] or response.reason_phrase
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    return str(error or body)[:500]


class ProprietaryGenerateHandler(CustomLLM):
    """Calls ``POST {api_base}/generate`` and maps its answer to a chat completion."""

    def __init__(self, timeout: float = 30) -> None:
        super().__init__()
        self.timeout = timeout

    async def acompletion(
        self, model: str, messages: list[dict[str, Any]], api_base: str, **kwargs: Any
    ) -> ModelResponse:
        payload = {
            "prompt": messages,
            "temperature": _param(kwargs, "temperature", DEFAULT_TEMPERATURE),
            "max_tokens": _param(kwargs, "max_tokens", DEFAULT_MAX_TOKENS),
        }
        url = f"{api_base.rstrip('/')}/generate"
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(url, json=payload, headers=kwargs.get("headers"))
        except httpx.TimeoutException as exc:
            raise CustomLLMError(504, f"{url} did not answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise CustomLLMError(502, f"cannot reach {url}: {exc!r}") from exc
        if response.is_error:
            raise CustomLLMError(response.status_code, _upstream_message(response))
        try:
            data = response.json()
            output = data["output"]
        except (ValueError, KeyError, TypeError) as exc:
            raise CustomLLMError(502, f"{url} answered without an 'output': {exc!r}") from exc
        return ModelResponse(
            id=data.get("id") or "generate",
            model=model,
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": output},
                    "finish_reason": "stop",
                }
            ],
            usage={
                "prompt_tokens": data.get("input_tokens", 0),
                "completion_tokens": data.get("output_tokens", 0),
                "total_tokens": data.get("total_tokens", 0),
            },
        )
