"""Measuring: per-request latency and time to first byte (interleaved), and throughput.

Latency uses one keep-alive ``http.client`` connection per target, the lightest
client the standard library has, and visits the targets in a shuffled order
each round so no target is favoured by when it runs.
"""

from __future__ import annotations

import http.client
import json
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


def body(model: str, stream: bool = False) -> bytes:
    return json.dumps(
        {
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 5,
            "stream": stream,
        }
    ).encode()


@dataclass
class Endpoint:
    """One thing to time: a URL and the body to POST to it."""

    name: str
    url: str
    payload: bytes
    stream: bool = False

    def connect(self) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)


def _one_request(conn: http.client.HTTPConnection, endpoint: Endpoint) -> float:
    path = urlsplit(endpoint.url).path
    started = time.perf_counter()
    conn.request("POST", path, endpoint.payload, {"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    elapsed = time.perf_counter() - started
    if response.status != 200:
        raise RuntimeError(f"{endpoint.name} answered {response.status}")
    return elapsed


def _first_event(conn: http.client.HTTPConnection, endpoint: Endpoint) -> float:
    path = urlsplit(endpoint.url).path
    started = time.perf_counter()
    conn.request("POST", path, endpoint.payload, {"Content-Type": "application/json"})
    response = conn.getresponse()
    while not response.readline().startswith(b"data:"):
        pass
    elapsed = time.perf_counter() - started
    response.read()
    if response.status != 200:
        raise RuntimeError(f"{endpoint.name} answered {response.status}")
    return elapsed


def interleaved(endpoints: list[Endpoint], rounds: int, warmup: int) -> dict[str, list[float]]:
    """Seconds per request (to the first SSE event, for streams) per endpoint, A B A B...

    Every round visits every endpoint, streaming or not, in a fresh random
    order, so drift in the machine's speed touches all figures alike.
    """
    connections = {e.name: e.connect() for e in endpoints}
    samples: dict[str, list[float]] = {e.name: [] for e in endpoints}
    order = list(endpoints)
    for index in range(warmup + rounds):
        random.shuffle(order)
        for endpoint in order:
            timer = _first_event if endpoint.stream else _one_request
            elapsed = timer(connections[endpoint.name], endpoint)
            if index >= warmup:
                samples[endpoint.name].append(elapsed)
    for conn in connections.values():
        conn.close()
    return samples


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def p50(values: list[float]) -> float:
    return statistics.median(values)


_WRK_SCRIPT = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""


def throughput(
    endpoint: Endpoint, connections: int, seconds: float, prefer_wrk: bool = True
) -> tuple[float, str]:
    """Requests per second at ``connections`` concurrent connections, and the tool used."""
    load = start_load(endpoint, connections, seconds, prefer_wrk)
    return finish_load(endpoint, load), load.tool


@dataclass
class Load:
    """A load generator running against one endpoint (:func:`start_load`)."""

    process: subprocess.Popen
    tool: str
    script: Path | None = None


def start_load(
    endpoint: Endpoint, connections: int, seconds: float, prefer_wrk: bool = True
) -> Load:
    """Start loading ``endpoint`` for ``seconds``: wrk when installed and preferred, else
    the asyncio client in :mod:`bench.load`."""
    wrk = shutil.which("wrk") if prefer_wrk else None
    if wrk:
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(_WRK_SCRIPT % endpoint.payload.decode())
        command = [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "-s",
                   script.name, endpoint.url]  # fmt: skip
        return Load(_started(command), "wrk", Path(script.name))
    command = [sys.executable, "-m", "bench.load", endpoint.url, endpoint.payload.decode(),
               str(connections), str(seconds)]  # fmt: skip
    return Load(_started(command), "bench.load (asyncio)")


def _started(command: list[str]) -> subprocess.Popen:
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_load(endpoint: Endpoint, load: Load) -> float:
    """The requests per second ``load`` measured, once it has ended."""
    output, errors = load.process.communicate()
    if load.script is not None:
        load.script.unlink()
    if load.process.returncode != 0:
        raise RuntimeError(f"{endpoint.name}: {load.tool} failed: {errors.strip()[-500:]}")
    if load.tool != "wrk":
        return float(json.loads(output)["requests_per_second"])
    failed = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if failed:
        raise RuntimeError(f"{endpoint.name}: {failed.group(1)} failed requests under load")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


THROUGHPUT_PASSES = 6


def throughput_passes(
    endpoints: list[Endpoint], seconds: float, prefer_wrk: bool = True,
    passes: int = THROUGHPUT_PASSES,
) -> dict[str, list[float]]:  # fmt: skip
    """Requests per second at 32 connections for each endpoint in each of ``passes``
    alternating passes (A B C, C B A, …) of ``2 * seconds / THROUGHPUT_PASSES`` each:
    on a machine whose speed wanders, short interleaved passes keep a slow moment from
    deciding a comparison, and more of them make their median steadier."""
    rates: dict[str, list[float]] = {}
    each = max(1.0, 2 * seconds / THROUGHPUT_PASSES)
    for turn in range(passes):
        for endpoint in endpoints if turn % 2 == 0 else endpoints[::-1]:
            rate, _ = throughput(endpoint, 32, each, prefer_wrk)
            rates.setdefault(endpoint.name, []).append(rate)
    return rates


def alternating_throughput(
    endpoints: list[Endpoint], seconds: float, prefer_wrk: bool = True
) -> dict[str, float]:
    """Each endpoint's median requests per second over :func:`throughput_passes`."""
    rates = throughput_passes(endpoints, seconds, prefer_wrk)
    return {name: statistics.median(values) for name, values in rates.items()}


def paired_share(target: list[float], base: list[float]) -> float:
    """``target``'s throughput as a share of ``base``'s: the median of the ratios of
    passes run beside each other (:func:`throughput_passes`) or at once
    (:mod:`bench.side_by_side`), so that the two runners of a pair met the same moment
    of the machine."""
    return statistics.median(t / b for t, b in zip(target, base, strict=True))


def added_and_throughput(
    direct: Endpoint, targets: list[Endpoint], rounds: int, seconds: float, tool: bool
) -> dict[str, dict[str, float]]:
    """For each target: its added p50 over ``direct`` (interleaved rounds), in ms, and its
    throughput at 32 connections (the median of the alternating passes, and each pass)."""
    samples = interleaved([direct, *targets], rounds, max(10, rounds // 10))
    by_pass = throughput_passes(targets, seconds, tool)
    figures = {}
    for target in targets:
        added = [t - d for t, d in zip(samples[target.name], samples[direct.name], strict=True)]
        figures[target.name] = {
            "added_p50_ms": p50(added) * 1000,
            "requests_per_second": statistics.median(by_pass[target.name]),
            "passes": by_pass[target.name],
        }
    return figures


def times_faster(runner: dict, proxy: dict) -> str:
    """``runner xN``: the runner's throughput as a multiple of the proxy's."""
    return f"runner x{runner['requests_per_second'] / proxy['requests_per_second']:.1f}"
