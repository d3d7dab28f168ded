"""The shapes every part of the call path shares.

This module imports nothing else from the runner, so any module may use these
types without pulling in the code that builds or runs them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

ModelType = Literal["chat", "completion", "embedding", "rerank"]
"""What a model does, and so which route serves it (see :mod:`runner.calls.operations`)."""

Answer = bytes | AsyncIterator[bytes]
"""What a backend hands back: the JSON body of a chat completion, or, for a stream,
the JSON payloads of its chunks (not yet framed as server-sent events). Either
way ``model`` already names the alias the caller used."""


class Backend(Protocol):
    """How one deployment's calls reach its upstream; chosen once, at registration.

    ``send`` raises whatever goes wrong (a network error, an upstream's refusal
    as a :class:`~runner.errors.RunnerError`, a handler's exception); the call
    path classifies it (:mod:`runner.calls.failures`), retries what may be
    retried and frames streams (:mod:`runner.calls.sse`). A stream that ends
    before its first chunk because the upstream sent nothing usable should raise,
    not end quietly: the caller then gets an error status instead of an empty 200.
    """

    name: str
    """A short name for logs and tests: ``plain_http``, ``litellm``, ``handler``."""

    async def send(self, call: PreparedCall) -> Answer: ...


class Gate:
    """One integration's (or one model's) limits in this process: a rate and slots."""

    def __init__(self, owner: str, rate_limit: int | None, max_concurrency: int | None) -> None:
        self.owner = owner
        self.rate_limit = rate_limit
        self.max_concurrency = max_concurrency
        # A token bucket holding up to one minute's worth of requests.
        self._tokens = float(rate_limit or 0)
        self._refilled = time.monotonic()
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None

    def wait_needed(self) -> float:
        """Seconds until this gate admits one more request (0: now)."""
        if self.rate_limit is None:
            return 0.0
        now = time.monotonic()
        per_second = self.rate_limit / 60
        self._tokens = min(self.rate_limit, self._tokens + (now - self._refilled) * per_second)
        self._refilled = now
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / per_second

    def take(self) -> None:
        if self.rate_limit is not None:
            self._tokens -= 1

    async def enter(self) -> None:
        if self._slots is not None:
            await self._slots.acquire()

    def leave(self) -> None:
        if self._slots is not None:
            self._slots.release()


@dataclass(frozen=True)
class Policy:
    """What one deployment's calls are held to, fixed at registration."""

    timeout: float
    num_retries: int
    gates: tuple[Gate, ...] = ()


@dataclass(frozen=True)
class Deployment:
    """One callable model: its alias, where it lives, what it accepts and how it is reached."""

    alias: str
    integration: str
    upstream_model: str
    accepted_params: Mapping[str, str]
    header_mapping: Mapping[str, str]
    policy: Policy = field(repr=False)
    backend: Backend = field(repr=False)
    type: ModelType = "chat"
    system: str = "openai"
    """Who answers, in OpenTelemetry's ``gen_ai.system`` terms (see deployments.py)."""
    ask_stream_usage: bool = True
    """Ask the upstream for a stream's usage even when the caller did not (to count its
    tokens); the caller then does not get the usage chunk (``RUNNER_STREAM_USAGE``)."""


@dataclass(frozen=True)
class PreparedCall:
    """A request resolved against a deployment: what to send, and what was dropped.

    ``inputs`` are the fields the route is about, checked and sent as they came
    (``messages`` for chat, ``prompt``, ``input``, or ``query`` and
    ``documents``). ``params`` are already under the names the upstream takes,
    and include ``stream``/``stream_options`` for streaming calls.
    """

    deployment: Deployment
    inputs: dict[str, Any]
    params: dict[str, Any]
    headers: dict[str, str]
    dropped: tuple[str, ...]
    stream: bool
    usage_chunk: bool = False
    """Whether the caller asked for a stream's usage chunk (``stream_options.include_usage``)."""

    @property
    def messages(self) -> list[Any]:
        """A chat call's messages."""
        return self.inputs["messages"]  # type: ignore[no-any-return]
