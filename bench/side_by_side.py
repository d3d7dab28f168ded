"""Throughput shares measured side by side: servers loaded at the same time on one CPU.

On a shared VM a server's speed moves by a fifth from one second to the next,
and differs between CPUs, so two servers loaded one after the other (or at once
on different CPUs) meet different machines: one full run of alternating
passes could put the same pair anywhere from 62% to 102% of each other. Pinned
to one CPU and loaded at once, the servers share its time equally (the
scheduler is fair to busy processes), meet the same moments, and each one's
requests per second is its share of the same CPU, so their ratio is the ratio
of their costs per request: 8 passes of 5 s repeated within ±3%.

The load generators and the upstream stay free to run on the other CPUs.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path

from . import measure
from .measure import Endpoint
from .targets import Target, process_tree

PASSES = 8


def available() -> bool:
    """Whether processes can be pinned here (Linux), so that the servers share one CPU."""
    return hasattr(os, "sched_setaffinity") and Path("/proc/self/task").is_dir()


def rates(
    pairs: Sequence[tuple[Endpoint, Target]], seconds: float, prefer_wrk: bool = True,
    passes: int = PASSES,
) -> dict[str, list[float]]:  # fmt: skip
    """Requests per second of each endpoint in each of ``passes`` passes of ``seconds``,
    all endpoints loaded at once (32 connections each) while their servers share the
    last CPU; the servers may use every CPU again afterwards."""
    servers = [target for _, target in pairs]
    cpu = max(os.sched_getaffinity(0))
    _pin(servers, {cpu})
    try:
        found: dict[str, list[float]] = {endpoint.name: [] for endpoint, _ in pairs}
        for _ in range(passes):
            loads = [
                (endpoint, measure.start_load(endpoint, 32, seconds, prefer_wrk))
                for endpoint, _ in pairs
            ]
            for endpoint, load in loads:
                found[endpoint.name].append(measure.finish_load(endpoint, load))
        return found
    finally:
        _pin(servers, os.sched_getaffinity(0))


def _pin(servers: Sequence[Target], cpus: set[int]) -> None:
    """Every thread of every process of ``servers`` onto ``cpus`` (threads started later
    inherit it from the thread that starts them)."""
    for server in servers:
        for pid in process_tree(server.process.pid):
            for task in _threads(pid):
                with contextlib.suppress(ProcessLookupError):  # a thread that just ended
                    os.sched_setaffinity(task, cpus)


def _threads(pid: int) -> list[int]:
    try:
        return [int(entry.name) for entry in Path(f"/proc/{pid}/task").iterdir()]
    except OSError:
        return []
