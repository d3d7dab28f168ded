"""The record of one request, noted on as the request goes, read when it ends.

A leaf module: the call path imports it to note what it learns (cheap
attribute writes), and nothing here imports the call path.
"""

from __future__ import annotations

import time
from collections import Counter
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

current: ContextVar[CallRecord | None] = ContextVar("runner_request", default=None)

in_flight: Counter[str] = Counter()
"""Calls in flight in this process, by integration (a gauge, read at scrape time)."""


@dataclass(slots=True, eq=False)
class CallRecord:
    """One request: set by the middleware (id, method, path, timings, status) and by the
    call path (what was called, how, and how it went)."""

    request_id: str
    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    key_id: str | None = None
    route: str | None = None
    operation: str | None = None
    alias: str | None = None
    integration: str | None = None
    backend: str | None = None
    upstream_model: str | None = None
    system: str | None = None
    stream: bool = False
    status: int = 0
    error_type: str | None = None
    error_code: str | None = None
    first_byte: float | None = None
    ended: float | None = None
    attempts: list[float] = field(default_factory=list)
    """Each upstream attempt's duration in seconds (retries are the attempts after one)."""
    slot_wait: float = 0.0
    tokens_in: int | None = None
    tokens_out: int | None = None
    counted_in_flight: bool = False
    trace: Any = None
    """The request's :class:`runner.observe.tracing.RequestTrace` when traces are on."""

    def call(self, route: str, deployment: Any) -> None:
        """The request resolved to ``deployment`` (a :class:`runner.calls.types.Deployment`):
        it is a call in flight from now on."""
        self.route, self.operation = route, deployment.type
        self.alias, self.integration = deployment.alias, deployment.integration
        self.backend, self.system = deployment.backend.name, deployment.system
        self.upstream_model = deployment.upstream_model
        in_flight[deployment.integration] += 1
        self.counted_in_flight = True

    def done(self) -> None:
        if self.counted_in_flight and self.integration is not None:
            in_flight[self.integration] -= 1
            self.counted_in_flight = False


def note_usage(usage: Any) -> None:
    """The token counts of the current call, from an answer's ``usage`` (a dict or an
    object with ``prompt_tokens``/``completion_tokens``); the last seen wins."""
    record = current.get()
    if record is None or not usage:
        return
    get = usage.get if isinstance(usage, dict) else lambda name: getattr(usage, name, None)
    prompt, completion = get("prompt_tokens"), get("completion_tokens")
    if type(prompt) is int:  # a bool is not a count
        record.tokens_in = prompt
    if type(completion) is int:
        record.tokens_out = completion


def note_error(error_type: str, code: str | None) -> None:
    """How the current call failed (for a stream, after its 200 was sent)."""
    record = current.get()
    if record is not None:
        record.error_type, record.error_code = error_type, code


def request_id() -> str | None:
    """The current request's id, for error bodies and upstream headers."""
    record = current.get()
    return record.request_id if record is not None else None


_ROUTES = frozenset(
    {
        "/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/rerank",
        "/v1/messages", "/v1/models", "/health", "/metrics",
    }
)  # fmt: skip


def bounded_route(path: str) -> str:
    """A name for a request no call claimed (refused first, or not a call) with a bounded
    set of values, for metric labels and span names: never a caller's own path."""
    if path.startswith("/integrations"):
        return "/integrations"
    return path if path in _ROUTES else "other"
