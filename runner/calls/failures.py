"""Turning upstream failures into caller-facing errors, the same on every call path.

Every failure falls into one of six categories (after seed 001's invoke errors),
each with its own status and OpenAI ``error.type``:

==================  ======  ==============================  ==========================
category            status  ``error.type``                  when
==================  ======  ==============================  ==========================
connection          502     ``upstream_connection_error``   unreachable, refused, reset
server unavailable  503     ``upstream_unavailable_error``  the upstream answered 5xx
rate limit          429     ``rate_limit_error``            upstream 429, or a limit
authorization       502     ``upstream_authorization_error`` upstream refused *our* key
bad request         4xx     ``invalid_request_error``       upstream 400/404/409/413/422
timeout             504     ``timeout_error``               the integration's timeout
==================  ======  ==============================  ==========================

Connection errors, 429 and 5xx are ``retryable``; the message always names
the alias and the integration.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import TypeVar

import aiohttp
import httpx

from runner.calls.answers import BadAnswer
from runner.calls.types import Deployment, Gate
from runner.errors import RunnerError
from runner.scrub import caller_safe
from runner.security.addresses import AddressRefused

log = logging.getLogger(__name__)
E = TypeVar("E", bound=BaseException)

_BAD_REQUEST_STATUSES = frozenset({400, 404, 409, 413, 422})


def where(deployment: Deployment) -> str:
    return f"upstream for {deployment.alias!r} (integration {deployment.integration!r})"


def status_error(
    deployment: Deployment, status: int, detail: str, retry_after: float | None = None
) -> RunnerError:
    """The error for an upstream that answered with a non-success ``status``."""
    if status in (401, 403):
        return RunnerError(
            f"{where(deployment)} rejected the runner's credentials ({status}): {detail}. "
            "This is a gateway misconfiguration, not a problem with your request: the "
            "integration's key or OAuth2 client needs fixing by whoever runs the runner.",
            502,
            "upstream_authorization_error",
            "upstream_credentials_rejected",
        )
    if status == 429:
        return RunnerError(
            f"{where(deployment)} is rate limiting the runner: {detail}",
            429,
            "rate_limit_error",
            "upstream_rate_limited",
            retry_after=retry_after,
            retryable=True,
        )
    if status in _BAD_REQUEST_STATUSES:
        return RunnerError(
            f"{where(deployment)} refused the request ({status}): {detail}",
            status,
            "invalid_request_error",
            "upstream_bad_request",
        )
    if status >= 500:
        return RunnerError(
            f"{where(deployment)} is unavailable ({status}): {detail}",
            503,
            "upstream_unavailable_error",
            "upstream_unavailable",
            retry_after=retry_after,
            retryable=True,
        )
    return RunnerError(
        f"{where(deployment)} answered {status}: {detail}",
        502,
        "upstream_connection_error",
        "upstream_unexpected_status",
    )


def timeout_error(deployment: Deployment, seconds: float) -> RunnerError:
    return RunnerError(
        f"{where(deployment)} did not answer within the integration's timeout of {seconds:g} s "
        "(retries and token requests included)",
        504,
        "timeout_error",
        "upstream_timeout",
    )


def rate_limited(deployment: Deployment, gate: Gate, wait: float) -> RunnerError:
    """The runner's own 429: ``gate`` admits no more requests for ``wait`` seconds."""
    return RunnerError(
        f"{where(deployment)} is over the rate_limit of {gate.owner} "
        f"({gate.rate_limit} requests per minute); try again in {math.ceil(wait)} s",
        429,
        "rate_limit_error",
        "rate_limited",
        retry_after=wait,
    )


def concurrency_limited(deployment: Deployment, gate: Gate, timeout: float) -> RunnerError:
    """The runner's own 429: no slot of ``gate`` came free within the call's timeout."""
    return RunnerError(
        f"{where(deployment)} already has {gate.max_concurrency} call(s) in flight "
        f"(max_concurrency of {gate.owner}) and none finished within the timeout of "
        f"{timeout:g} s; try again later",
        429,
        "rate_limit_error",
        "concurrency_limited",
        retry_after=1,
    )


def connection_error(deployment: Deployment, reason: str) -> RunnerError:
    return RunnerError(
        f"{where(deployment)} is unreachable: {reason}",
        502,
        "upstream_connection_error",
        "upstream_unreachable",
        retryable=True,
    )


def as_runner_error(exc: BaseException, deployment: Deployment) -> RunnerError:
    """Translate whatever LiteLLM or the network raised into a caller-facing error."""
    own = _in_chain(exc, RunnerError)
    if own is not None:
        return own
    # Exception text may hold a traceback and file paths (LiteLLM puts both in some).
    detail = caller_safe(str(getattr(exc, "message", None) or exc) or type(exc).__name__)
    if (
        isinstance(exc, TimeoutError)
        or _is_litellm(exc, "Timeout")
        or _in_chain(exc, httpx.TimeoutException) is not None
    ):
        return RunnerError(
            f"{where(deployment)} timed out: {detail}", 504, "timeout_error", "upstream_timeout"
        )
    refused = _in_chain(exc, AddressRefused)
    if refused is not None:
        return RunnerError(
            f"{where(deployment)} was not called: {refused}. Point the integration at the "
            "provider's public address.",
            502,
            "upstream_connection_error",
            "upstream_address_refused",
        )
    # LiteLLM reports a refused connection as a 500 "InternalServerError"; the
    # network error underneath tells the truth.
    network = _in_chain(exc, httpx.TransportError) or _in_chain(exc, aiohttp.ClientError)
    if network is not None or _is_litellm(exc, "APIConnectionError"):
        reason = (
            caller_safe(f"{type(network).__name__}: {network}") if network is not None else detail
        )
        return connection_error(deployment, reason)
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status_error(deployment, status, detail, _retry_after_of(exc))
    log.error("unexpected failure calling %s", where(deployment), exc_info=exc)
    return RunnerError(
        f"{where(deployment)} failed: {detail}",
        502,
        "upstream_connection_error",
        "upstream_failed",
    )


def answer_error(exc: BaseException, deployment: Deployment) -> RunnerError | None:
    """The 502 for a 200 the runner would not pass on, if ``exc`` is or wraps one.

    A connection-category failure, but not retried: the upstream did answer
    (and may have done the work), and would most likely answer the same again.
    See :mod:`runner.calls.answers`.
    """
    refused = _in_chain(exc, BadAnswer)
    if refused is None:
        return None
    return RunnerError(
        f"{where(deployment)} {refused}", 502, "upstream_connection_error", refused.code
    )


def upstream_error(exc: BaseException, deployment: Deployment) -> RunnerError:
    """What a call path raises for ``exc``: a refused answer, else :func:`as_runner_error`."""
    return answer_error(exc, deployment) or as_runner_error(exc, deployment)


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (the delta-seconds form; dates are ignored).

    An upstream may send anything: ``inf`` or ``1e400`` would reach the caller's own
    Retry-After as an integer that cannot be made, so only finite waits count.
    """
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _retry_after_of(exc: BaseException) -> float | None:
    """The upstream's Retry-After, where LiteLLM kept it (its own header copy, else the
    response it attached)."""
    headers = getattr(exc, "litellm_response_headers", None)
    if headers is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
    return retry_after(headers.get("retry-after")) if headers is not None else None


def _is_litellm(exc: BaseException, kind: str) -> bool:
    """Whether ``exc`` is LiteLLM's exception class ``kind``, without importing LiteLLM to ask.

    Only a call through LiteLLM raises its exceptions, and that call imported it;
    until then nothing can be one (see :mod:`runner.lazy_litellm`).
    """
    litellm = sys.modules.get("litellm")
    return litellm is not None and isinstance(exc, getattr(litellm, kind, ()))


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
