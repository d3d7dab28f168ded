"""The call path: an OpenAI chat request in, an upstream call out, errors made legible.

This is the code every request runs, so it only does what depends on the
request: pick the parameters the model accepts, turn ``metadata`` into mapped
headers, and send the call down the fast path (:mod:`runner.direct`) or through
LiteLLM with the deployment's precomputed arguments.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import direct, lazy_litellm
from .errors import RunnerError
from .guardrails import guarded
from .upstream import Deployment
from .upstream_errors import error_event, upstream_error

log = logging.getLogger(__name__)

# Request fields the runner consumes itself rather than forwarding as parameters.
_HANDLED_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "metadata"})


@dataclass(frozen=True)
class PreparedCall:
    """A request resolved against a deployment: what to send, and what was dropped.

    ``params`` are already under the names the upstream takes, and include
    ``stream``/``stream_options`` for streaming calls.
    """

    deployment: Deployment
    messages: list[Any]
    params: dict[str, Any]
    headers: dict[str, str]
    dropped: tuple[str, ...]
    stream: bool


def prepare(deployment: Deployment, body: Mapping[str, Any]) -> PreparedCall:
    """Filter a chat-completions body down to what the deployment's model accepts."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RunnerError(
            message="'messages' must be a non-empty list of chat messages.",
            status_code=422,
            param="messages",
            code="invalid_messages",
        )
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RunnerError(
                message=f"'messages[{index}]' must be an object with a 'role', such as "
                '{"role": "user", "content": "Hello"}.',
                status_code=422,
                param=f"messages[{index}]",
                code="invalid_messages",
            )
    if not isinstance(body.get("stream", False), bool):
        raise RunnerError(
            message="'stream' must be true or false.",
            status_code=422,
            param="stream",
            code="invalid_stream",
        )
    stream = body.get("stream") is True
    params: dict[str, Any] = {}
    dropped = []
    accepted = deployment.accepted_params
    for key, value in body.items():
        if key in _HANDLED_FIELDS:
            continue
        target = accepted.get(key)
        if target is None:
            dropped.append(key)
        else:
            params[target] = value
    if stream:
        params["stream"] = True
        if isinstance(body.get("stream_options"), dict):
            params["stream_options"] = body["stream_options"]
    headers = mapped_headers(deployment.header_mapping, body)
    return PreparedCall(deployment, messages, params, headers, tuple(dropped), stream)


def mapped_headers(mapping: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, str]:
    """Headers from ``custom_header_mapping``, valued from ``metadata`` (and ``user``)."""
    if not mapping:
        return {}
    metadata = body.get("metadata")
    values = dict(metadata) if isinstance(metadata, dict) else {}
    if "user_id" not in values and isinstance(body.get("user"), str):
        values["user_id"] = body["user"]
    headers = {}
    for field, header in mapping.items():
        if values.get(field) is None:
            continue
        value = str(values[field])
        if not value.isprintable():  # CR, LF and the like would split or break the header
            raise RunnerError(
                message=f"'metadata.{field}' is sent upstream as the header {header!r}, so it "
                "must be printable text on one line (no control or invisible characters).",
                status_code=422,
                param=f"metadata.{field}",
                code="invalid_metadata",
            )
        headers[header] = value
    return headers


async def complete(call: PreparedCall) -> bytes | AsyncIterator[bytes]:
    """Run the call: the JSON body of the answer, or its server-sent events when streaming.

    Plain OpenAI-compatible deployments go straight over HTTP when they can
    (:mod:`runner.direct`); everything else goes through LiteLLM. A stream's
    first chunk is awaited here, so a failure before any output (an upstream
    refusal, a handler that raises at once) still gets a proper status.
    """
    return await guarded(call.deployment, lambda: _attempt(call))


async def _attempt(call: PreparedCall) -> bytes | AsyncIterator[bytes]:
    if call.deployment.direct is not None:
        return await direct.complete(call, call.deployment.direct)
    kwargs = {**call.deployment.litellm_kwargs, "messages": call.messages, **call.params}
    if call.headers:
        kwargs["extra_headers"] = call.headers
    try:
        # Imported when the deployment was registered (lazy_litellm.load), so this is a lookup.
        result = await lazy_litellm.litellm().acompletion(**kwargs)
        if call.stream:
            return _sse_events(await anext(aiter(result), None), result, call)
    except Exception as exc:
        raise upstream_error(exc, call.deployment) from exc
    result.model = call.deployment.alias
    return result.model_dump_json().encode()


async def _sse_events(first: Any, stream: Any, call: PreparedCall) -> AsyncIterator[bytes]:
    """Server-sent events for a LiteLLM stream, ending in ``[DONE]`` (or an error event)."""
    alias = call.deployment.alias

    async def chunks() -> AsyncIterator[Any]:
        if first is not None:
            yield first
            async for chunk in stream:
                yield chunk

    try:
        async for chunk in chunks():
            chunk.model = alias
            yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
    except Exception as exc:
        error = upstream_error(exc, call.deployment)
        log.warning("stream from %r failed: %s", alias, error.message)
        yield error_event(error)
        return
    finally:
        await stream.aclose()
    yield b"data: [DONE]\n\n"
