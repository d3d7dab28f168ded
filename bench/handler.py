"""The handler scenario: an offline custom handler (no upstream at all), runner against proxy.

Both serve ``custom_llms/offline_echo.py``: the runner as a handler integration,
LiteLLM's proxy through its ``custom_provider_map``. With no network behind the
handler, every millisecond measured is the server's own.
"""

from __future__ import annotations

from pathlib import Path

from . import measure
from .measure import Endpoint
from .targets import REPO, Target

MODEL = "bench-handler"
PROVIDER = "offline-echo"
GOAL_P50_MS = 1.0
GOAL_RATIO = 15


def proxy_config_lines(workdir: Path) -> tuple[list[str], list[str]]:
    """The proxy's model entry and ``litellm_settings`` lines; writes the module it loads."""
    (workdir / "bench_handler.py").write_text(
        "import sys\n"
        f"sys.path.insert(0, {str(REPO / 'custom_llms')!r})\n"
        "from offline_echo import OfflineEchoHandler\n"
        "handler = OfflineEchoHandler()\n"
    )
    model = [
        f"  - model_name: {MODEL}",
        "    litellm_params:",
        f"      model: {PROVIDER}/{MODEL}",
    ]
    settings = [
        "  custom_provider_map:",
        f"    - provider: {PROVIDER}",
        "      custom_handler: bench_handler.handler",
    ]
    return model, settings


def compare(runner: Target, proxy: Target | None, rounds: int, seconds: float, tool: bool) -> dict:
    """p50 latency (interleaved) and throughput at 32 connections (alternating passes)."""
    endpoints = [Endpoint("runner", f"{runner.url}/v1/chat/completions", measure.body(MODEL))]
    if proxy is not None:
        endpoints.append(
            Endpoint("litellm_proxy", f"{proxy.url}/v1/chat/completions", measure.body(MODEL))
        )
    samples = measure.interleaved(endpoints, rounds, max(10, rounds // 10))
    rates = measure.alternating_throughput(endpoints, seconds, tool)
    return {
        e.name: {
            "p50_ms": measure.p50(samples[e.name]) * 1000,
            "p99_ms": measure.percentile(samples[e.name], 0.99) * 1000,
            "requests_per_second": rates[e.name],
        }
        for e in endpoints
    }


def report_lines(figures: dict) -> list[str]:
    runner, proxy = figures["runner"], figures.get("litellm_proxy")
    line = (
        f"Offline custom handler (`custom_llms/offline_echo.py`, no upstream): runner "
        f"{runner['p50_ms']:.2f} ms p50, {runner['p99_ms']:.2f} ms p99, "
        f"{runner['requests_per_second']:,.0f} req/s"
    )
    if proxy is not None:
        line += (
            f"; LiteLLM proxy {proxy['p50_ms']:.2f} ms p50, {proxy['p99_ms']:.2f} ms p99, "
            f"{proxy['requests_per_second']:,.0f} req/s "
            f"({measure.times_faster(runner, proxy)})"
        )
    return ["", line + "."]


def verdicts(figures: dict) -> list[tuple[str, bool]]:
    runner, proxy = figures["runner"], figures.get("litellm_proxy")
    checks = [(f"offline handler p50 ≤ {GOAL_P50_MS:g} ms", runner["p50_ms"] <= GOAL_P50_MS)]
    if proxy is not None:
        checks.append(
            (
                f"offline handler throughput ≥ {GOAL_RATIO}x LiteLLM proxy's",
                runner["requests_per_second"] >= GOAL_RATIO * proxy["requests_per_second"],
            )
        )
    return checks
