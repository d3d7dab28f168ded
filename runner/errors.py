"""Errors the runner raises on purpose, each carrying what the caller needs to fix it.

Every refusal ends up in the OpenAI error envelope ``{"error": {...}}``; these
types hold the pieces (status, type, code, message and, for bad integrations,
one entry per offending field) so the HTTP layer only has to serialize them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel
from starlette.types import Send

from runner.observe.records import note_error
from runner.observe.records import request_id as current_request_id


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an integration: where (``field``) and how to fix it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass
class RunnerError(Exception):
    """A refusal with an HTTP status and an OpenAI-style error type."""

    message: str
    status_code: int = 400
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    problems: list[Problem] = field(default_factory=list)
    # Seconds the caller should wait before trying again (sent as Retry-After).
    retry_after: float | None = None
    # Whether the runner itself may try the call again (a transient upstream failure).
    retryable: bool = field(default=False, compare=False)
    # Where in the operator's own code it came from (a handler's "file.py:12"), for the
    # log line only: callers never see it.
    origin: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def response_headers(self) -> dict[str, str]:
        """Headers for the HTTP answer. Not named ``headers``: LiteLLM reads an
        exception's ``headers`` attribute as a mapping when it logs a failure."""
        if self.retry_after is None:
            return {}
        return {"retry-after": str(max(1, math.ceil(self.retry_after)))}

    def to_body(self) -> dict[str, object]:
        """The OpenAI envelope, with the request's id; building it notes the failure on the
        request's record, so every refusal sent is logged and counted as what it is."""
        note_error(self.type, self.code)
        error: dict[str, object] = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "param": self.param,
        }
        request_id = current_request_id()
        if request_id is not None:
            error["request_id"] = request_id
        if self.problems:
            error["problems"] = [{"field": p.field, "message": p.message} for p in self.problems]
        return {"error": error}


class ErrorBody(BaseModel):
    """The OpenAI error envelope's inside, as the OpenAPI document describes it."""

    message: str
    type: str
    code: str | None = None
    param: str | None = None
    problems: list[dict[str, str]] | None = None
    request_id: str | None = None


class ErrorEnvelope(BaseModel):
    """Every refusal the runner sends: ``{"error": {...}}``."""

    error: ErrorBody


class IntegrationInvalid(RunnerError):
    """The integration JSON cannot be accepted; nothing was stored or registered."""

    def __init__(
        self, problems: list[Problem], status_code: int = 422, code: str | None = None
    ) -> None:
        summary = "; ".join(str(p) for p in problems)
        super().__init__(
            message=f"invalid integration: {summary}",
            status_code=status_code,
            type="invalid_integration",
            code=code or ("alias_conflict" if status_code == 409 else "invalid_integration"),
            param=problems[0].field if problems else None,
            problems=list(problems),
        )


async def send_json(
    send: Send, status: int, body: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with a JSON ``body`` straight over ASGI (the paths that skip FastAPI use this)."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                *headers,
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_error(send: Send, error: RunnerError) -> None:
    """Answer with ``error`` in the OpenAI envelope, straight over ASGI."""
    headers = [(k.encode(), v.encode()) for k, v in error.response_headers().items()]
    await send_json(send, error.status_code, json.dumps(error.to_body()).encode(), headers)
