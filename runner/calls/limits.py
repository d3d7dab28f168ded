"""Limits around every upstream call: a deadline, a rate, a number of slots, retries.

Each integration, and each model that sets its own, may declare ``timeout``
(seconds for the whole call: waiting for a slot, OAuth2 token requests and
retries included), ``rate_limit`` (requests per minute), ``max_concurrency``
(calls in flight; 1 serializes a stateful system) and ``num_retries``. A
model's ``timeout`` and ``num_retries`` override its integration's; its rate and
concurrency limits apply on top of the integration's, which all its models
share. Limits are kept per runner process: N replicas admit N times the rate.

Retries cover connection errors, upstream 429s and 5xx, with exponential
backoff and full jitter, waiting as long as an upstream's ``Retry-After`` asks
when it says, and never past the deadline. A stream is retried only until its
first event: once anything has gone to the caller, a failure ends the stream.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from runner.calls.failures import concurrency_limited, rate_limited, timeout_error
from runner.calls.types import Answer, Deployment, Gate, Policy
from runner.errors import RunnerError
from runner.observe import records, tracing
from runner.observe.records import CallRecord

BACKOFF_BASE_SECONDS = 0.2
BACKOFF_CAP_SECONDS = 8.0
DEFAULT_NUM_RETRIES = 2


async def guarded(deployment: Deployment, attempt: Callable[[], Awaitable[Answer]]) -> Answer:
    """Run ``attempt`` within the deployment's policy; a stream keeps its slots until it ends."""
    policy = deployment.policy
    _admit(policy, deployment)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + policy.timeout
    held: list[Gate] = []
    record = records.current.get()
    try:
        async with asyncio.timeout_at(deadline):
            if policy.gates:
                waiting_since = loop.time()
                for gate in policy.gates:
                    await gate.enter()
                    held.append(gate)
                waited = loop.time() - waiting_since
                if record is not None:
                    record.slot_wait = waited
                    if record.trace is not None:
                        gates = {"runner.gates": len(policy.gates)}
                        tracing.waited(record.trace, "limits", waited, **gates)
            # A handler's own spans nest under its attempt's, which must then be current.
            trace = record.trace if record is not None else None
            nested = trace is not None and deployment.backend.name == "handler"
            result = await _with_retries(policy, attempt, deadline, record, nested)
    except TimeoutError:
        waiting_for = policy.gates[len(held)] if len(held) < len(policy.gates) else None
        _leave(held)
        if waiting_for is not None:
            raise concurrency_limited(deployment, waiting_for, policy.timeout) from None
        raise timeout_error(deployment, policy.timeout) from None
    except BaseException:
        _leave(held)
        raise
    if isinstance(result, bytes) or not held:
        _leave(held)
        return result
    return _Holding(result, held)


def _admit(policy: Policy, deployment: Deployment) -> None:
    waits = [(gate.wait_needed(), gate) for gate in policy.gates]
    wait, gate = max(waits, key=lambda pair: pair[0], default=(0.0, None))
    if gate is not None and wait > 0:
        raise rate_limited(deployment, gate, wait)
    for gate in policy.gates:
        gate.take()


async def _with_retries(
    policy: Policy,
    attempt: Callable[[], Awaitable[Answer]],
    deadline: float,
    record: CallRecord | None,
    nested: bool = False,
) -> Answer:
    loop = asyncio.get_running_loop()
    retries = 0
    trace = record.trace if record is not None else None
    while True:
        started = loop.time()
        failure = None
        try:
            if nested:
                return await tracing.traced_attempt(trace, attempt, retries + 1)  # type: ignore[no-any-return]
            return await attempt()
        except RunnerError as exc:
            failure = exc
        finally:
            took = loop.time() - started
            if record is not None:
                record.attempts.append(took)
            if trace is not None and not nested:
                tracing.attempted(trace, took, retries + 1, failure)
        if not failure.retryable or retries >= policy.num_retries:
            raise failure
        delay = failure.retry_after if failure.retry_after is not None else _backoff(retries)
        if loop.time() + delay >= deadline:
            raise failure
        retries += 1
        await asyncio.sleep(delay)


def _backoff(retries: int) -> float:
    """Exponential backoff with full jitter: 0.2 s, 0.4 s, 0.8 s … (capped), times U(0, 1]."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2**retries)
    return ceiling * (1 - random.random())


class _Holding:
    """A stream that gives its slots back when it ends, fails or is closed.

    Not an async generator: one closed before its first event never runs its
    ``finally``, and would keep its slots for good.
    """

    def __init__(self, events: AsyncIterator[bytes], held: list[Gate]) -> None:
        self._events = events
        self._held = held

    def __aiter__(self) -> _Holding:
        return self

    async def __anext__(self) -> bytes:
        try:
            return await anext(self._events)
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        _leave(self._held)
        await self._events.aclose()  # type: ignore[attr-defined]


def _leave(held: list[Gate]) -> None:
    for gate in held:
        gate.leave()
    held.clear()
