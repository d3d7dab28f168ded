"""One worker against two: the runner's plain-path throughput with ``--workers 2``.

The two-worker runner gets the same two integrations as the one-worker
``runner`` target, and the two are timed in alternating passes (A B B A A B B A)
in the same run, so drift in the machine's speed touches both alike. The load
generator and the upstream run on the same cores as the workers: on a
two-core machine two workers never have two whole cores to themselves.
"""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import httpx

from . import measure, targets

WORKERS = 2
NAME = f"runner_workers_{WORKERS}"
GOAL = 1.5
ORDER = (1, WORKERS, WORKERS, 1) * 2


def start(workdir: Path, upstream_url: str) -> targets.Target:
    """A runner with ``WORKERS`` workers, returned once every worker answers."""
    directory = workdir / "workers"
    targets.write_runner_config(directory, upstream_url, 2)
    runner = targets.start_runner(
        f"runner, {WORKERS} workers", directory, {"RUNNER_WORKERS": str(WORKERS)}
    )
    _wait_all_workers(runner.url, WORKERS)
    return runner


def _wait_all_workers(url: str, count: int, timeout: float = 180) -> None:
    """Until ``count`` distinct worker pids have answered ``/health`` (one connection each).

    The first worker up makes the server look ready; measuring before the
    others have imported everything would time one worker, not ``count``.
    """
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    # "Connection: close": each request on a new connection, which may reach another worker.
    with httpx.Client(timeout=5, headers={"Connection": "close"}) as client:
        while len(seen) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {len(seen)} of {count} workers answered in {timeout} s")
            seen.add(client.get(f"{url}/health").json()["worker"]["pid"])
            time.sleep(0.05)


def compare(one: targets.Target, many: targets.Target, seconds: float, prefer_wrk: bool) -> dict:
    """Requests per second of each at 32 connections, in ``ORDER``; the figures to keep."""
    endpoints = {
        count: measure.Endpoint(
            name, f"{target.url}/v1/chat/completions", measure.body(targets.MODEL)
        )
        for count, name, target in ((1, "runner", one), (WORKERS, NAME, many))
    }
    rates: dict[int, list[float]] = {1: [], WORKERS: []}
    for count in ORDER:
        rate, _ = measure.throughput(endpoints[count], 32, seconds, prefer_wrk)
        rates[count].append(rate)
    return summary(rates[1], rates[WORKERS], many.peak_rss_mb())


def summary(one: list[float], many: list[float], peak_rss_mb: float) -> dict:
    """The figures ``bench-results.json`` keeps under ``workers``."""
    mean_one, mean_many = statistics.mean(one), statistics.mean(many)
    return {
        "workers": WORKERS,
        "cores": os.cpu_count(),
        "one_worker_requests_per_second": mean_one,
        "requests_per_second": mean_many,
        "ratio": mean_many / mean_one,
        "passes": {"1": one, str(WORKERS): many},
        "peak_rss_mb": peak_rss_mb,
    }


def report_lines(figures: dict, load_generator: str) -> list[str]:
    one, many = figures["passes"]["1"], figures["passes"][str(figures["workers"])]
    return [
        "",
        f"Workers, plain path at 32 connections: {figures['one_worker_requests_per_second']:,.0f}"
        f" req/s with 1, {figures['requests_per_second']:,.0f} req/s with {figures['workers']} "
        f"(x{figures['ratio']:.2f}; passes {min(one):,.0f} to {max(one):,.0f} and "
        f"{min(many):,.0f} to {max(many):,.0f}; peak RSS of the {figures['workers']}-worker tree "
        f"{figures['peak_rss_mb']:,.0f} MB). The load generator ({load_generator}) and the "
        f"upstream share the machine's {figures['cores']} cores with the workers.",
    ]


def verdict(figures: dict) -> tuple[str, bool]:
    label = (
        f"{figures['workers']} workers ≥ {GOAL}x one worker's throughput "
        f"(load generator on the same {figures['cores']} cores)"
    )
    return label, figures["ratio"] >= GOAL
