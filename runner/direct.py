"""The fast path: plain OpenAI-compatible calls sent straight over the integration's client.

LiteLLM spends several milliseconds of CPU per call (logging objects, cost
lookups, response re-validation) translating between formats that, for an
OpenAI-compatible upstream, are already the same. This path skips that: the
filtered request goes out through the integration's pooled ``httpx`` client —
the one LiteLLM uses, with the same auth flow, 401 refresh and fixed headers —
and the upstream's JSON comes back with only ``model`` set to the alias.
Errors map exactly as on the LiteLLM path (:mod:`runner.upstream_errors`).
``RUNNER_FAST_PATH=false`` turns it off; the test suite runs on both paths.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from .upstream_errors import as_runner_error, error_event, status_error

if TYPE_CHECKING:
    from .completions import PreparedCall

_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class DirectRoute:
    """Where a plain deployment's requests go: its URL and the client that signs them."""

    http: httpx.AsyncClient
    url: str


async def complete(call: PreparedCall, route: DirectRoute) -> bytes | AsyncIterator[bytes]:
    deployment = call.deployment
    body = json.dumps(
        {"model": deployment.upstream_model, "messages": call.messages, **call.params}
    ).encode()
    headers = {**_JSON, **call.headers} if call.headers else _JSON
    request = route.http.build_request("POST", route.url, content=body, headers=headers)
    response: httpx.Response | None = None
    try:
        response = await route.http.send(request, stream=call.stream)
        if response.status_code >= 400:
            await response.aread()
            raise status_error(deployment, response.status_code, _upstream_message(response))
        if not call.stream:
            return _with_alias(response.content, deployment.alias)
        events = response.aiter_lines()
        first = await _next_event(events)
    except Exception as exc:
        if response is not None:
            await response.aclose()
        raise as_runner_error(exc, deployment) from exc
    return _sse(first, events, response, call)


async def _next_event(lines: AsyncIterator[str]) -> str | None:
    """The next SSE ``data:`` payload, or None at the end of the stream."""
    async for line in lines:
        if line.startswith("data:"):
            payload = line[5:].strip()
            if payload != "[DONE]":
                return payload
            # Read to the end of the body so the connection can be reused.
            async for _ in lines:
                pass
            return None
    return None


async def _sse(
    first: str | None, lines: AsyncIterator[str], response: httpx.Response, call: PreparedCall
) -> AsyncIterator[bytes]:
    alias = call.deployment.alias
    payload = first
    try:
        while payload is not None:
            yield b"data: " + _with_alias(payload.encode(), alias) + b"\n\n"
            payload = await _next_event(lines)
    except Exception as exc:
        yield error_event(as_runner_error(exc, call.deployment))
        return
    finally:
        await response.aclose()
    yield b"data: [DONE]\n\n"


def _with_alias(raw: bytes, alias: str) -> bytes:
    """The upstream's JSON with ``model`` set to the alias the caller used."""
    try:
        data: Any = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(data, dict) and "model" in data:
        data["model"] = alias
        return json.dumps(data, separators=(",", ":")).encode()
    return raw


def _upstream_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and error.get("message"):
        return str(error["message"])
    if isinstance(error, str):
        return error
    return response.text[:500] or response.reason_phrase
