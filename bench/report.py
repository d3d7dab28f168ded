"""The benchmark's figures as the markdown the README carries: a table, then the checks."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from . import formats, handler, observability, workers


def machine() -> str:
    """What the run ran on, for the table's first line."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores, {cpu}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def _fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def table(results: dict) -> str:
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
    lines += handler.report_lines(results["handler"])
    lines += formats.report_lines(results["anthropic"])
    lines += observability.report_lines(results["observability"])
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
        *handler.verdicts(results["handler"]),
        *formats.verdicts(results["anthropic"]),
        *observability.verdicts(results["observability"]),
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
