"""``POST /integrations/{name}/test``: one tiny request to each model, a few at a time.

An integration may list thousands of models; sending every probe at once
would fire thousands of requests at one provider (and at the runner's own
limits) in the same instant. So a handful run at a time, and the whole test
has a deadline: what has not answered by then is reported as such, so the
caller always gets an answer in time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from typing import Any

from runner.calls.operations import BY_TYPE
from runner.calls.prepare import prepare
from runner.calls.run import complete
from runner.calls.types import Deployment
from runner.errors import RunnerError

PROBES_AT_ONCE = 4
DEFAULT_DEADLINE_SECONDS = 30.0
MAX_DEADLINE_SECONDS = 120.0
# The smallest request each model type answers.
_PROBES = {
    "chat": {"messages": [{"role": "user", "content": "Reply with the word OK."}], "max_tokens": 5},
    "completion": {"prompt": "Reply with the word OK.", "max_tokens": 5},
    "embedding": {"input": "OK"},
    "rerank": {"query": "OK", "documents": ["OK"]},
}


def deadline_from(value: str | None) -> float:
    """Seconds the test may take: the ``timeout`` query parameter, capped, or the default."""
    if value is None:
        return DEFAULT_DEADLINE_SECONDS
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not seconds > 0:  # NaN too
        raise RunnerError(
            f"'timeout' must be a number of seconds above 0 (at most {MAX_DEADLINE_SECONDS:g} "
            "are used).",
            422,
            param="timeout",
            code="invalid_timeout",
        )
    return min(seconds, MAX_DEADLINE_SECONDS)


async def probe_all(deployments: Sequence[Deployment], deadline: float) -> list[dict[str, Any]]:
    """Each deployment's result, in order; :data:`PROBES_AT_ONCE` in flight, until ``deadline``."""
    results: dict[int, dict[str, Any]] = {}
    started: set[int] = set()
    queue = iter(enumerate(deployments))

    async def prober() -> None:
        for index, deployment in queue:
            started.add(index)
            results[index] = await _probe(deployment)

    try:
        async with asyncio.timeout(deadline), asyncio.TaskGroup() as group:
            for _ in range(min(PROBES_AT_ONCE, len(deployments))):
                group.create_task(prober())
    except TimeoutError:
        pass
    return [
        results.get(index) or _unfinished(deployment, deadline, index in started)
        for index, deployment in enumerate(deployments)
    ]


async def _probe(deployment: Deployment) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        await complete(prepare(deployment, _PROBES[deployment.type], BY_TYPE[deployment.type]))
        error = None
    except RunnerError as exc:
        error = {"status": exc.status_code, "message": exc.message}
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return _result(deployment, latency_ms, error)


def _unfinished(deployment: Deployment, deadline: float, started: bool) -> dict[str, Any]:
    message = (
        f"no answer before the test's deadline of {deadline:g} s"
        if started
        else f"not probed: the test's deadline of {deadline:g} s passed first"
    )
    return _result(deployment, None, {"status": 504, "message": message})


def _result(
    deployment: Deployment, latency_ms: float | None, error: dict[str, Any] | None
) -> dict[str, Any]:
    return {
        "alias": deployment.alias,
        "model": deployment.upstream_model,
        "ok": error is None,
        "latency_ms": latency_ms,
        "error": error,
    }
