"""What an upstream's successful answer must be before the runner passes it on.

A 200 is not proof of a chat completion (or of embeddings, or a ranking): a
misconfigured proxy answers with an HTML login page, a crashed server with
half a body, a hostile one with a gigabyte. So, on both call paths, a
non-streamed answer must be a JSON object with a ``choices`` list (``data`` for
embeddings, ``results`` for a ranking), each streamed ``data:`` event a JSON
object, a stream must carry at least one, and no answer may be longer than
``RUNNER_MAX_RESPONSE_BYTES`` (counted after any decompression). Anything else
raises a :class:`BadAnswer`, which :func:`runner.calls.failures.answer_error`
turns into a 502.
"""

from __future__ import annotations

import json
from typing import Any


class BadAnswer(Exception):
    """A successful status whose body the runner will not pass on; ``code`` says why."""

    code = "upstream_invalid_response"


class AnswerTooLarge(BadAnswer):
    code = "upstream_response_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"sent an answer longer than {limit} bytes (RUNNER_MAX_RESPONSE_BYTES); it was cut off"
        )


def completion(raw: bytes) -> dict[str, Any]:
    """The chat completion in a non-streamed answer's body."""
    answer = _json(raw, "answered 200 with a body")
    if not isinstance(answer, dict) or not isinstance(answer.get("choices"), list):
        raise BadAnswer(f"answered 200 with something other than a chat completion: {_quote(raw)}")
    return answer


def embeddings(raw: bytes) -> dict[str, Any]:
    """The embeddings in a non-streamed answer's body: an object with a ``data`` list."""
    return _with_list(raw, "data", "an embeddings list")


def rerank(raw: bytes) -> dict[str, Any]:
    """The ranking in a rerank answer's body: an object with a ``results`` list."""
    return _with_list(raw, "results", "a rerank result")


def _with_list(raw: bytes, key: str, what: str) -> dict[str, Any]:
    answer = _json(raw, "answered 200 with a body")
    if not isinstance(answer, dict) or not isinstance(answer.get(key), list):
        raise BadAnswer(f"answered 200 with something other than {what}: {_quote(raw)}")
    return answer


def json_object(raw: bytes) -> dict[str, Any]:
    """A non-streamed answer in another wire format: a JSON object, whatever its shape
    (LiteLLM translates it, and says so if it cannot)."""
    answer = _json(raw, "answered 200 with a body")
    if not isinstance(answer, dict):
        raise BadAnswer(f"answered 200 with something other than a JSON object: {_quote(raw)}")
    return answer


def chunk(payload: bytes) -> dict[str, Any]:
    """The JSON object in one streamed ``data:`` event."""
    event = _json(payload, "sent a stream event")
    if not isinstance(event, dict):
        raise BadAnswer(f"sent a stream event that is not a JSON object: {_quote(payload)}")
    return event


def no_events() -> BadAnswer:
    return BadAnswer("ended the stream without sending any chat completion chunk")


def _json(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise BadAnswer(f"{what} that is not JSON: {_quote(raw)}") from None


def _quote(raw: bytes) -> str:
    """The start of what the upstream sent, for the operator to recognise it."""
    text = raw[:200].decode(errors="replace")
    return repr(text + "…" if len(raw) > 200 else text)
