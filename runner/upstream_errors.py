"""Turning upstream failures into caller-facing errors, the same on every call path.

Whether a call went through LiteLLM or straight over HTTP, the caller sees
the same statuses and types: the upstream's 400/404/409/413/422/429 pass
through; refused credentials, other failures and unreachable upstreams are
502s; timeouts are 504s. The message names the alias and the integration.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, TypeVar

import aiohttp
import httpx
import litellm

from .errors import RunnerError

if TYPE_CHECKING:
    from .upstream import Deployment

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseException)

_PASSTHROUGH_STATUSES = frozenset({400, 404, 409, 413, 422, 429})


def where(deployment: Deployment) -> str:
    return f"upstream for {deployment.alias!r} (integration {deployment.integration!r})"


def status_error(deployment: Deployment, status: int, detail: str) -> RunnerError:
    """The error for an upstream that answered with a non-success ``status``."""
    if status in (401, 403):
        return RunnerError(
            f"{where(deployment)} rejected the integration's credentials ({status}): {detail}",
            502,
            "upstream_auth_error",
            "upstream_unauthorized",
        )
    if status in _PASSTHROUGH_STATUSES:
        return RunnerError(
            f"{where(deployment)} refused the request ({status}): {detail}",
            status,
            "upstream_error",
            f"upstream_{status}",
        )
    return RunnerError(
        f"{where(deployment)} failed ({status}): {detail}", 502, "upstream_error", "upstream_failed"
    )


def as_runner_error(exc: BaseException, deployment: Deployment) -> RunnerError:
    """Translate whatever LiteLLM or the network raised into a caller-facing error."""
    own = _in_chain(exc, RunnerError)
    if own is not None:
        return own
    detail = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    if (
        isinstance(exc, litellm.Timeout | TimeoutError)
        or _in_chain(exc, httpx.TimeoutException) is not None
    ):
        return RunnerError(
            f"{where(deployment)} timed out: {detail}", 504, "upstream_timeout", "timeout"
        )
    # LiteLLM reports a refused connection as a 500 "InternalServerError"; the
    # network error underneath tells the truth.
    network = _in_chain(exc, httpx.TransportError) or _in_chain(exc, aiohttp.ClientError)
    if network is not None or isinstance(exc, litellm.APIConnectionError):
        reason = f"{type(network).__name__}: {network}" if network is not None else detail
        return RunnerError(
            f"{where(deployment)} is unreachable: {reason}", 502, "upstream_error", "unreachable"
        )
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status_error(deployment, status, detail)
    log.error("unexpected failure calling %s", where(deployment), exc_info=exc)
    return RunnerError(
        f"{where(deployment)} failed: {detail}", 502, "upstream_error", "upstream_failed"
    )


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


def error_event(error: RunnerError) -> bytes:
    """The SSE event that ends a stream which failed after it started."""
    return b"data: " + json.dumps(error.to_body()).encode() + b"\n\n"
