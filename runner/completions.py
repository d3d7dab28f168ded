"""The call path: an OpenAI chat request in, a LiteLLM call out, errors made legible.

This is the code every request runs, so it only does what depends on the
request: pick the parameters the model accepts, turn ``metadata`` into mapped
headers, and call LiteLLM with the deployment's precomputed arguments.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import litellm

from .errors import RunnerError
from .upstream import Deployment

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseException)

litellm.suppress_debug_info = True
litellm.drop_params = False
litellm.telemetry = False

# Request fields the runner consumes itself rather than forwarding as parameters.
_HANDLED_FIELDS = frozenset({"model", "messages", "stream", "stream_options", "metadata"})
_PASSTHROUGH_STATUSES = frozenset({400, 404, 409, 413, 422, 429})


@dataclass(frozen=True)
class PreparedCall:
    """A request resolved against a deployment: the LiteLLM arguments and what was dropped."""

    deployment: Deployment
    kwargs: dict[str, Any]
    dropped: tuple[str, ...]
    stream: bool


def prepare(deployment: Deployment, body: Mapping[str, Any]) -> PreparedCall:
    """Filter a chat-completions body down to what the deployment's model accepts."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RunnerError(
            message="'messages' must be a non-empty list of chat messages.",
            param="messages",
            code="invalid_messages",
        )
    stream = body.get("stream") is True
    kwargs = dict(deployment.litellm_kwargs)
    kwargs["messages"] = messages
    dropped = []
    accepted = deployment.accepted_params
    for key, value in body.items():
        if key in _HANDLED_FIELDS:
            continue
        target = accepted.get(key)
        if target is None:
            dropped.append(key)
        else:
            kwargs[target] = value
    if stream:
        kwargs["stream"] = True
        if isinstance(body.get("stream_options"), dict):
            kwargs["stream_options"] = body["stream_options"]
    headers = mapped_headers(deployment.header_mapping, body)
    if headers:
        kwargs["extra_headers"] = headers
    return PreparedCall(deployment, kwargs, tuple(dropped), stream)


def mapped_headers(mapping: Mapping[str, str], body: Mapping[str, Any]) -> dict[str, str]:
    """Headers from ``custom_header_mapping``, valued from ``metadata`` (and ``user``)."""
    if not mapping:
        return {}
    metadata = body.get("metadata")
    values = dict(metadata) if isinstance(metadata, dict) else {}
    if "user_id" not in values and isinstance(body.get("user"), str):
        values["user_id"] = body["user"]
    return {
        header: str(values[field])
        for field, header in mapping.items()
        if values.get(field) is not None
    }


@dataclass(frozen=True)
class OpenStream:
    """A stream whose first chunk has arrived, so it is known to have started well."""

    first: Any | None
    rest: Any


async def complete(call: PreparedCall) -> Any:
    """Run the call: a ModelResponse, or an :class:`OpenStream` when streaming.

    A stream's first chunk is awaited here, so a failure before any output (an
    upstream refusal, a handler that raises at once) still gets a proper status.
    """
    try:
        result = await litellm.acompletion(**call.kwargs)
        if call.stream:
            return OpenStream(await anext(aiter(result), None), result)
        return result
    except Exception as exc:
        raise as_runner_error(exc, call.deployment) from exc


async def sse_events(stream: OpenStream, call: PreparedCall) -> AsyncIterator[bytes]:
    """Server-sent events for a LiteLLM stream, ending in ``[DONE]`` (or an error event)."""
    alias = call.deployment.alias

    async def chunks() -> AsyncIterator[Any]:
        if stream.first is not None:
            yield stream.first
            async for chunk in stream.rest:
                yield chunk

    try:
        async for chunk in chunks():
            chunk.model = alias
            yield b"data: " + chunk.model_dump_json(exclude_none=True).encode() + b"\n\n"
    except Exception as exc:
        error = as_runner_error(exc, call.deployment)
        log.warning("stream from %r failed: %s", alias, error.message)
        yield b"data: " + json.dumps(error.to_body()).encode() + b"\n\n"
        return
    finally:
        await stream.rest.aclose()
    yield b"data: [DONE]\n\n"


def as_runner_error(exc: BaseException, deployment: Deployment) -> RunnerError:
    """Translate whatever LiteLLM or the network raised into a caller-facing error."""
    own = _in_chain(exc, RunnerError)
    if own is not None:
        return own
    where = f"upstream for {deployment.alias!r} (integration {deployment.integration!r})"
    detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if isinstance(exc, litellm.Timeout) or _in_chain(exc, httpx.TimeoutException):
        return RunnerError(f"{where} timed out: {detail}", 504, "upstream_timeout", "timeout")
    # LiteLLM reports a refused connection as a 500 "InternalServerError"; the
    # network error underneath tells the truth.
    network = _in_chain(exc, httpx.TransportError)
    if network is not None or isinstance(exc, litellm.APIConnectionError):
        reason = f"{type(network).__name__}: {network}" if network is not None else detail
        return RunnerError(
            f"{where} is unreachable: {reason}", 502, "upstream_error", "unreachable"
        )
    status = getattr(exc, "status_code", None)
    if status in (401, 403):
        return RunnerError(
            f"{where} rejected the integration's credentials ({status}): {detail}",
            502,
            "upstream_auth_error",
            "upstream_unauthorized",
        )
    if status in _PASSTHROUGH_STATUSES:
        return RunnerError(
            f"{where} refused the request ({status}): {detail}",
            status,
            "upstream_error",
            f"upstream_{status}",
        )
    if status is None:
        log.error("unexpected failure calling %s", where, exc_info=exc)
    return RunnerError(f"{where} failed: {detail}", 502, "upstream_error", "upstream_failed")


def _in_chain(exc: BaseException, kind: type[E]) -> E | None:
    """The first ``kind`` among ``exc`` and its causes: what was raised under the wrapping."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
