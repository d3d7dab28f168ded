"""``python -m bench``: the runner against LiteLLM's proxy, in one interleaved run.

Starts a fixed upstream, the runner (once with two integrations, once with a
thousand, once with two integrations and ``--workers 2``), and LiteLLM's proxy
for the same model; measures added latency, time to first streamed byte,
throughput at 32 connections (one worker against two, too) and peak memory;
prints a markdown table and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from . import measure, targets, upstream, workers
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
    print(report(results))
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
        targets.write_runner_config(workdir / "many", up_url, many)
        small = targets.start_runner("runner", workdir / "small")
        servers.append(small)
        pair = workers.start(workdir, up_url)
        servers.append(pair)
        started = time.perf_counter()
        big = targets.start_runner(f"runner, {many} integrations", workdir / "many")
        servers.append(big)
        _log(f"runner with {many} integrations ready in {time.perf_counter() - started:.1f} s")
        proxy = None
        command = targets.litellm_proxy_command() if with_proxy else None
        if command:
            proxy = targets.start_litellm_proxy(command, up_url, workdir)
            servers.append(proxy)
        else:
            _log("LiteLLM proxy skipped (install with: pip install 'litellm[proxy]')")
        registration = _registration_ms(big.url)
        results = _measure(
            up_url, up_kind, small, big, proxy, rounds, seconds, many, registration, prefer_wrk
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
        "machine": _machine(),
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


def _machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return (
        f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def report(results: dict) -> str:
    """The figures as a markdown table, with runner ÷ LiteLLM proxy ratios and the targets."""
    t = results["targets"]
    many = results["many_integrations"]
    labels = {
        "direct": f"upstream direct ({results['upstream']})",
        "runner": "runner",
        "runner_many": f"runner, {many:,} integrations",
        "litellm_proxy": "LiteLLM proxy",
    }
    lines = [
        f"Run {results['date']} on {results['machine']}; {results['rounds']} interleaved "
        f"rounds, throughput by {results['load_generator']} at 32 connections.",
        "",
        "| | added p50 (ms) | added p99 (ms) | stream TTFB added p50 (ms) | req/s at 32 conn "
        "| peak RSS (MB) |",
        "|---|---|---|---|---|---|",
    ]
    for name, label in labels.items():
        if name not in t:
            continue
        e = t[name]
        if name == "direct":
            lines.append(
                f"| {label} | {_fmt(e['p50_ms'])} (absolute) | {_fmt(e['p99_ms'])} "
                f"(absolute) | {_fmt(e['ttfb_p50_ms'])} (absolute) | "
                f"{_fmt(e.get('requests_per_second'), 0)} | — |"
            )
        else:
            lines.append(
                f"| {label} | {_fmt(e['added_p50_ms'])} | {_fmt(e['added_p99_ms'])} | "
                f"{_fmt(e['ttfb_added_p50_ms'])} | "
                f"{_fmt(e.get('requests_per_second'), 0)} | "
                f"{_fmt(e['peak_rss_mb'], 0)} |"
            )
    runner, proxy = t["runner"], t.get("litellm_proxy")
    if proxy:
        lines.append(
            f"| **runner ÷ proxy** | {runner['added_p50_ms'] / proxy['added_p50_ms']:.2f} | "
            f"{runner['added_p99_ms'] / proxy['added_p99_ms']:.2f} | "
            f"{runner['ttfb_added_p50_ms'] / proxy['ttfb_added_p50_ms']:.2f} | "
            f"{runner['requests_per_second'] / proxy['requests_per_second']:.2f} | "
            f"{runner['peak_rss_mb'] / proxy['peak_rss_mb']:.2f} |"
        )
    reg = results["register_one_more_ms"]
    lines += [
        "",
        f"Registering one more integration with {many:,} present: "
        f"{reg['plain']:.1f} ms (plain), {reg['handler']:.1f} ms (custom handler), "
        "wall time of the POST.",
    ]
    lines += workers.report_lines(results["workers"], results["load_generator"])
    lines += _store_lines(results["store"])
    lines += ["", *_verdicts(results)]
    return "\n".join(lines)


def _store_lines(store: dict) -> list[str]:
    startup, post = store["startup"], store["post_ms"]
    small, large = (int(n) for n in post)
    return [
        "",
        f"Starting with {startup['stored']:,} stored integrations: "
        f"{startup['load_seconds']:.2f} s to unseal and register them all; "
        f"{startup['process_to_healthy_seconds']:.2f} s from `runner serve` to healthy, "
        "interpreter and imports included (median of the starts; "
        f"{startup['plain_process_to_healthy_seconds']:.2f} s with one plain integration).",
        f"POST of one more integration (median wall time, SQLite, fsync on): "
        f"{post[str(small)]:.1f} ms with {small:,} stored, "
        f"{post[str(large)]:.1f} ms with {large:,} stored.",
    ]


def _verdicts(results: dict) -> list[str]:
    t = results["targets"]
    runner, many, proxy = t["runner"], t["runner_many"], t.get("litellm_proxy")
    checks = []
    if proxy:
        checks += [
            (
                "added latency p50 ≤ ½ of LiteLLM proxy's",
                runner["added_p50_ms"] <= proxy["added_p50_ms"] / 2,
            ),
            (
                "throughput ≥ 2x LiteLLM proxy's",
                runner["requests_per_second"] >= 2 * proxy["requests_per_second"],
            ),
            ("peak RSS below LiteLLM proxy's", runner["peak_rss_mb"] < proxy["peak_rss_mb"]),
        ]
    checks += [
        ("added latency p50 ≤ 1 ms (goal)", runner["added_p50_ms"] <= 1.0),
        (
            "streaming TTFB overhead ≤ non-streaming overhead (+10% for noise)",
            runner["ttfb_added_p50_ms"] <= runner["added_p50_ms"] * 1.1,
        ),
        (
            "many integrations: added p50 within 10% of the small runner's",
            many["added_p50_ms"] <= runner["added_p50_ms"] * 1.1,
        ),
        (
            "registering one more integration < 10 ms",
            max(results["register_one_more_ms"].values()) < 10,
        ),
        workers.verdict(results["workers"]),
    ]
    startup, post = results["store"]["startup"], results["store"]["post_ms"]
    small, large = sorted(post, key=int)
    checks += [
        (
            f"startup with {startup['stored']:,} stored integrations < 3 s (the runner's own work)",
            startup["load_seconds"] < 3,
        ),
        (
            "`runner serve` to healthy ≤ 1.5 s with only plain integrations (LiteLLM not imported)",
            startup["plain_process_to_healthy_seconds"] <= 1.5,
        ),
        (
            f"`runner serve` to healthy ≤ 2.5 s with {startup['stored']:,} stored integrations",
            startup["process_to_healthy_seconds"] <= 2.5,
        ),
        (
            f"POST with {int(large):,} stored within 20% of with {int(small):,}",
            post[large] <= post[small] * 1.2,
        ),
    ]
    return [f"- [{'x' if ok else ' '}] {label}" for label, ok in checks]


if __name__ == "__main__":
    sys.exit(main())
