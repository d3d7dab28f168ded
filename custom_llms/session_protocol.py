"""A handler for a provider that answers through a multi-step, asynchronous protocol.

Use this shape when one completion takes several calls: open a session, submit
work, poll for the result. Here the provider is called with::

    POST {api_base}/sessions                      {"model": ...}             -> {"session_id"}
    POST {api_base}/sessions/{session_id}/messages
         {"messages": [...], "parameters": {"temperature": ..., ...}}       -> {"job_id"}
    GET  {api_base}/jobs/{job_id}   -> {"status": "pending"}  (repeat every poll_interval s)
                                    -> {"status": "done", "result": {"text", "usage": {...}}}
                                    -> {"status": "failed", "error": "..."}

Every call carries the ``headers`` the handler is given (the integration's auth,
mapped and fixed headers), because each step is a separate request the provider
authenticates. A failed job is a 502, and a job still unfinished after
``max_polls`` polls is a 504, so a caller never waits without limit; an HTTP
error at any step keeps the upstream's status.

Integration::

    "custom_llm_config": {
      "file_name": "session_protocol.py",
      "class_name": "SessionProtocolHandler",
      "init_kwargs": {"poll_interval": 0.2, "max_polls": 50}
    }
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from litellm import CustomLLM, ModelResponse
from litellm.llms.custom_llm import CustomLLMError

# LiteLLM's own switches, which travel in optional_params; they are not the provider's business.
_NOT_FORWARDED = frozenset({"stream", "stream_options"})


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


async def _call(client: httpx.AsyncClient, method: str, path: str, **kwargs: Any) -> Any:
    """One step of the protocol: its JSON answer, or a CustomLLMError with a caller's status."""
    step = f"{method} {str(client.base_url).rstrip('/')}{path}"
    try:
        response = await client.request(method, path, **kwargs)
    except httpx.TimeoutException as exc:
        raise CustomLLMError(504, f"{step} timed out") from exc
    except httpx.HTTPError as exc:
        raise CustomLLMError(502, f"{step} failed: {exc!r}") from exc
    if response.is_error:
        message = f"{step} answered {response.status_code}"
        raise CustomLLMError(response.status_code, f"{message}: {_upstream_message(response)}")
    try:
        return response.json()
    except ValueError as exc:
        raise CustomLLMError(502, f"{step} answered with invalid JSON") from exc


def _field(data: Any, name: str, step: str) -> Any:
    if not isinstance(data, dict) or data.get(name) is None:
        raise CustomLLMError(502, f"{step} answered without {name!r}: {str(data)[:200]}")
    return data[name]


class SessionProtocolHandler(CustomLLM):
    """Opens a session, submits the messages as a job, and polls the job until it ends."""

    def __init__(self, poll_interval: float = 0.2, max_polls: int = 50, timeout: float = 30):
        super().__init__()
        if poll_interval < 0 or max_polls < 1:
            raise ValueError("poll_interval must be >= 0 and max_polls >= 1")
        self.poll_interval = poll_interval
        self.max_polls = max_polls
        self.timeout = timeout

    async def acompletion(
        self, model: str, messages: list[dict[str, Any]], api_base: str, **kwargs: Any
    ) -> ModelResponse:
        parameters = {
            name: value
            for name, value in (kwargs.get("optional_params") or {}).items()
            if name not in _NOT_FORWARDED
        }
        async with httpx.AsyncClient(
            base_url=api_base.rstrip("/"), headers=kwargs.get("headers"), timeout=self.timeout
        ) as client:
            session = await _call(client, "POST", "/sessions", json={"model": model})
            session_id = _field(session, "session_id", "POST /sessions")
            job = await _call(
                client,
                "POST",
                f"/sessions/{session_id}/messages",
                json={"messages": messages, "parameters": parameters},
            )
            job_id = _field(job, "job_id", f"POST /sessions/{session_id}/messages")
            result = await self._wait(client, job_id)
        usage = result.get("usage") or {}
        return ModelResponse(
            id=str(job_id),
            model=model,
            choices=[
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": _field(result, "text", "job")},
                    "finish_reason": result.get("finish_reason") or "stop",
                }
            ],
            usage={
                "prompt_tokens": usage.get("prompt_tokens", 0),
                "completion_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", 0),
            },
        )

    async def _wait(self, client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
        """The job's result, polling at most ``max_polls`` times."""
        for poll in range(self.max_polls):
            if poll:
                await asyncio.sleep(self.poll_interval)
            job = await _call(client, "GET", f"/jobs/{job_id}")
            status = _field(job, "status", f"GET /jobs/{job_id}")
            if status == "done":
                return _field(job, "result", f"GET /jobs/{job_id}")
            if status == "failed":
                raise CustomLLMError(502, f"job {job_id} failed: {job.get('error') or 'no reason'}")
        waited = self.poll_interval * (self.max_polls - 1)
        raise CustomLLMError(
            504, f"job {job_id} unfinished after {self.max_polls} polls ({waited:g} s)"
        )
