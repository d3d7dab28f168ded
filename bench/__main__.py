"""``python -m bench``: the runner against LiteLLM's proxy, in one interleaved run.

Starts a fixed upstream, the runner (once with two integrations and an offline
handler, once with a thousand, once with ``--workers 2``), and LiteLLM's proxy
for the same models; measures added latency, time to first streamed byte,
throughput at 32 connections (one worker against two, too), the offline
handler's latency and throughput, and peak memory; prints a markdown table and
writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from . import formats, handler, measure, observability, report, targets, upstream, workers
from .measure import Endpoint
from .targets import MODEL, STREAM_MODEL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a seconds-long check that it runs")
    parser.add_argument("--rounds", type=int, help="timed requests per target (default 2000)")
    parser.add_argument("--seconds", type=float, help="seconds per throughput pass (default 10)")
    parser.add_argument("--integrations", type=int, help="for the many-integrations runner")
    parser.add_argument("--no-proxy", action="store_true", help="skip LiteLLM's proxy")
    parser.add_argument(
        "--upstream",
        choices=["auto", "builtin"],
        default="auto",
        help="auto: nginx when installed, else the built-in server",
    )
    parser.add_argument(
        "--load",
        choices=["auto", "python"],
        default="auto",
        help="auto: wrk when installed, else the built-in asyncio client",
    )
    parser.add_argument("--json", type=Path, default=Path("bench-results.json"))
    args = parser.parse_args(argv)
    rounds = args.rounds or (30 if args.smoke else 2000)
    seconds = args.seconds or (1 if args.smoke else 10)
    many = args.integrations or (50 if args.smoke else 1000)
    store_sizes = (100, 10, 1000) if args.smoke else (1000, 10, 10_000)
    with tempfile.TemporaryDirectory(prefix="runner-bench-") as tmp:
        results = _run(
            Path(tmp),
            rounds,
            seconds,
            many,
            not args.no_proxy,
            prefer_nginx=args.upstream == "auto",
            prefer_wrk=args.load == "auto",
        )
        _log(f"store: startup with {store_sizes[0]:,} stored, POST with {store_sizes[1:]}")
        from . import store  # imports the runner: only once the servers are done

        results["store"] = store.measure(
            Path(tmp),
            *store_sizes,
            rounds=10 if args.smoke else 40,
            starts=1 if args.smoke else 5,
        )
    results["mode"] = "smoke" if args.smoke else "full"
    args.json.write_text(json.dumps(results, indent=2))
    print(report.table(results))
    print(f"\nfigures written to {args.json}", file=sys.stderr)
    return 0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run(
    workdir: Path,
    rounds: int,
    seconds: float,
    many: int,
    with_proxy: bool,
    prefer_nginx: bool,
    prefer_wrk: bool,
) -> dict:
    port = targets.free_port()
    up_process, up_kind = upstream.start(port, workdir, prefer_nginx)
    up_url = f"http://127.0.0.1:{port}"
    servers: list[targets.Target] = []
    try:
        _wait_upstream(up_url)
        _log(f"upstream: {up_kind} on {up_url}")
        targets.write_runner_config(workdir / "small", up_url, 2)
        formats.write_runner_config(workdir / "small", up_url)
        targets.write_runner_config(workdir / "many", up_url, many)
        small = targets.start_runner("runner", workdir / "small")
        servers.append(small)
        pair = workers.start(workdir, up_url)
        servers.append(pair)
        observed = observability.start(workdir, up_url)
        servers.extend(observed)
        started = time.perf_counter()
        big = targets.start_runner(f"runner, {many} integrations", workdir / "many")
        servers.append(big)
        _log(f"runner with {many} integrations ready in {time.perf_counter() - started:.1f} s")
        proxy = None
        command = targets.litellm_proxy_command() if with_proxy else None
        if command:
            models, settings = handler.proxy_config_lines(workdir)
            models += formats.proxy_model_lines(up_url)
            proxy = targets.start_litellm_proxy(command, up_url, workdir, models, settings)
            servers.append(proxy)
        else:
            _log("LiteLLM proxy skipped (install with: pip install 'litellm[proxy]')")
        registration = _registration_ms(big.url)
        results = _measure(
            up_url, up_kind, small, big, proxy, rounds, seconds, many, registration, prefer_wrk
        )
        _log("offline handler: latency and throughput, runner against LiteLLM's proxy")
        results["handler"] = handler.compare(small, proxy, rounds, seconds, prefer_wrk)
        _log("anthropic format: latency and throughput, runner against LiteLLM's proxy")
        results["anthropic"] = formats.compare(up_url, small, proxy, rounds, seconds, prefer_wrk)
        _log("observability: metrics, JSON access lines and traces on, against all off")
        results["observability"] = observability.compare(
            up_url, observed, rounds, seconds, prefer_wrk
        )
        _log(f"throughput: 1 worker against {workers.WORKERS}, alternating passes")
        results["workers"] = workers.compare(small, pair, seconds, prefer_wrk)
        return results
    finally:
        for server in servers:
            server.stop()
        up_process.terminate()
        up_process.wait(timeout=10)


def _wait_upstream(url: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.post(f"{url}/v1/chat/completions", content=b"{}", timeout=1)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _registration_ms(url: str) -> dict[str, float]:
    """Median wall time of POSTing one more integration to a runner that has many."""
    timings: dict[str, list[float]] = {"plain": [], "handler": []}
    with httpx.Client(base_url=url, timeout=30) as client:
        for index in range(7):
            for kind, spec in (
                (
                    "plain",
                    targets.plain_integration("http://127.0.0.1:9", f"x-{index}", f"x-{index}"),
                ),
                ("handler", targets.handler_integration(f"h-{index}")),
            ):
                started = time.perf_counter()
                response = client.post(f"/integrations/extra-{kind}-{index}", json=spec)
                timings[kind].append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
    return {kind: statistics.median(values) for kind, values in timings.items()}


def _measure(
    up_url, up_kind, small, big, proxy, rounds, seconds, many, registration, prefer_wrk
) -> dict:
    named = [("direct", up_url, "/v1"), ("runner", small.url, ""), ("runner_many", big.url, "")]
    if proxy:
        named.append(("litellm_proxy", proxy.url, ""))
    plain = [
        Endpoint(
            n,
            f"{u}{p}/chat/completions" if n == "direct" else f"{u}/v1/chat/completions",
            measure.body(MODEL),
        )
        for n, u, p in named
    ]
    stream = [
        Endpoint(
            f"{n} stream",
            f"{u}/stream/v1/chat/completions" if n == "direct" else f"{u}/v1/chat/completions",
            measure.body(STREAM_MODEL, stream=True),
            stream=True,
        )
        for n, u, _ in named
    ]
    warmup = max(10, rounds // 10)
    _log(f"latency and time to first byte: {rounds} interleaved rounds")
    samples = measure.interleaved(plain + stream, rounds, warmup)
    latency = {e.name: samples[e.name] for e in plain}
    ttfb = {e.name.removesuffix(" stream"): samples[e.name] for e in stream}
    rates: dict[str, list[float]] = {}
    tool = ""
    for _ in range(2):  # A B A B
        for endpoint in plain:
            if endpoint.name == "runner_many":
                continue
            rate, tool = measure.throughput(endpoint, 32, seconds, prefer_wrk)
            rates.setdefault(endpoint.name, []).append(rate)
    _log(f"throughput measured with {tool}")
    servers = {"runner": small, "runner_many": big, "litellm_proxy": proxy}
    results: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": report.machine(),
        "upstream": up_kind,
        "load_generator": tool,
        "rounds": rounds,
        "throughput_seconds": seconds,
        "many_integrations": many,
        "register_one_more_ms": registration,
        "targets": {},
    }
    for name, _, _ in named:
        entry: dict = {
            "p50_ms": measure.p50(latency[name]) * 1000,
            "p99_ms": measure.percentile(latency[name], 0.99) * 1000,
            "ttfb_p50_ms": measure.p50(ttfb[name]) * 1000,
        }
        if name != "direct":
            added = [t - d for t, d in zip(latency[name], latency["direct"], strict=True)]
            added_ttfb = [t - d for t, d in zip(ttfb[name], ttfb["direct"], strict=True)]
            entry.update(
                added_p50_ms=measure.p50(added) * 1000,
                added_p99_ms=measure.percentile(added, 0.99) * 1000,
                ttfb_added_p50_ms=measure.p50(added_ttfb) * 1000,
                peak_rss_mb=servers[name].peak_rss_mb(),
            )
        if name in rates:
            entry["requests_per_second"] = statistics.mean(rates[name])
        results["targets"][name] = entry
    return results


if __name__ == "__main__":
    sys.exit(main())
