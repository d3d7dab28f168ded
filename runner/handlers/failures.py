"""What a handler's exception means to the caller: a status, a category, a safe message.

A handler chooses its status by raising LiteLLM's ``CustomLLMError`` with one;
its 401 and 403 are the gateway's misconfiguration, not the caller's; anything
else it raises is the upstream being unavailable. Messages pass through
``safe`` so no secret of the integration reaches the caller.
"""

from __future__ import annotations

from collections.abc import Callable

from litellm.llms.custom_llm import CustomLLMError

from runner.errors import RunnerError
from runner.handlers.threads import Escaped


def classify(
    exc: BaseException,
    name: str,
    timeout: float,
    safe: Callable[[str], str],
    *,
    timed_out: bool,
) -> RunnerError:
    """The caller-facing error for what a handler raised; ``safe`` masks its secrets."""
    if timed_out:
        return RunnerError(
            f"{name} did not answer within {timeout:g} s",
            504,
            "timeout_error",
            "upstream_timeout",
        )
    if isinstance(exc, Escaped):
        exc = exc.original
    status = getattr(exc, "status_code", None) if isinstance(exc, CustomLLMError) else None
    if status in (401, 403):
        # The provider refused the credentials the runner holds for it: a gateway
        # misconfiguration, as for a plain upstream, not the caller's key.
        return RunnerError(
            f"{name} reports that its provider rejected the runner's credentials "
            f"({status}): {safe(_text(getattr(exc, 'message', '')))}. This "
            "is a gateway misconfiguration, not a problem with your request: the "
            "integration's key or OAuth2 client needs fixing by whoever runs the runner.",
            502,
            "upstream_authorization_error",
            "upstream_credentials_rejected",
        )
    if isinstance(status, int) and 400 <= status <= 599:
        # The handler chose the status; it keeps it, in the matching category.
        return RunnerError(
            f"{name} failed: {safe(_text(getattr(exc, 'message', '')))}",
            status,
            _HANDLER_STATUS_TYPES.get(
                status,
                "upstream_unavailable_error" if status >= 500 else "invalid_request_error",
            ),
            "handler_error",
            retryable=status == 429 or status >= 500,
        )
    text = safe(_text(exc))
    return RunnerError(
        f"{name} raised {type(exc).__name__}{': ' + text if text else ''}",
        503,
        "upstream_unavailable_error",
        "handler_error",
    )


_HANDLER_STATUS_TYPES = {
    429: "rate_limit_error",
    502: "upstream_connection_error",
    504: "timeout_error",
}


def _text(value: object) -> str:
    """``str(value)``, which runs the handler's code for its own exception types."""
    try:
        return str(value)
    except BaseException:
        return "(its message could not be read)"
