"""The wire-format scenario: an Anthropic-format endpoint, runner against LiteLLM's proxy.

Both translate the caller's OpenAI request to Anthropic's Messages API and the
fixed answer back (the runner through LiteLLM, over its own client), so the
comparison is of what each adds around LiteLLM's translation. Latency is
reported as added over calling the upstream's ``/anthropic/v1/messages`` directly.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import measure
from .measure import Endpoint
from .targets import Target

MODEL = "bench-anthropic"
UPSTREAM_NAME = "claude-bench"
GOAL_RATIO = 2


def write_runner_config(directory: Path, upstream: str) -> None:
    """The scenario's integration, beside the runner's other config files."""
    (directory / f"{MODEL}.json").write_text(json.dumps(runner_integration(upstream)))


def runner_integration(upstream: str) -> dict:
    return {
        "authentication_type": "api_key",
        "api_key_header": "x-api-key",
        "api_key_value": "unused",
        "endpoint": f"{upstream}/anthropic",
        "format": "anthropic",
        "model_properties": [
            {"name": UPSTREAM_NAME, "alias": MODEL, "supported_parameters": ["max_tokens"]}
        ],
    }


def proxy_model_lines(upstream: str) -> list[str]:
    return [
        f"  - model_name: {MODEL}",
        "    litellm_params:",
        f"      model: anthropic/{UPSTREAM_NAME}",
        f"      api_base: {upstream}/anthropic",
        "      api_key: unused",
    ]


def compare(
    upstream: str, runner: Target, proxy: Target | None, rounds: int, seconds: float, tool: bool
) -> dict:
    """Added p50 over the direct call (interleaved), and throughput at 32 connections."""
    direct_body = json.dumps(
        {"model": UPSTREAM_NAME, "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
    ).encode()
    direct = Endpoint("direct", f"{upstream}/anthropic/v1/messages", direct_body)
    targets = [Endpoint("runner", f"{runner.url}/v1/chat/completions", measure.body(MODEL))]
    if proxy is not None:
        targets.append(
            Endpoint("litellm_proxy", f"{proxy.url}/v1/chat/completions", measure.body(MODEL))
        )
    return measure.added_and_throughput(direct, targets, rounds, seconds, tool)


def report_lines(figures: dict) -> list[str]:
    runner, proxy = figures["runner"], figures.get("litellm_proxy")
    line = (
        f'Anthropic-format endpoint (`"format": "anthropic"`, both through LiteLLM\'s '
        f"translation): runner {runner['added_p50_ms']:.2f} ms added p50, "
        f"{runner['requests_per_second']:,.0f} req/s"
    )
    if proxy is not None:
        line += (
            f"; LiteLLM proxy {proxy['added_p50_ms']:.2f} ms, "
            f"{proxy['requests_per_second']:,.0f} req/s "
            f"({measure.times_faster(runner, proxy)})"
        )
    return ["", line + "."]


def verdicts(figures: dict) -> list[tuple[str, bool]]:
    runner, proxy = figures["runner"], figures.get("litellm_proxy")
    if proxy is None:
        return []
    return [
        (
            "anthropic format: added p50 ≤ LiteLLM proxy's",
            runner["added_p50_ms"] <= proxy["added_p50_ms"],
        ),
        (
            f"anthropic format: throughput ≥ {GOAL_RATIO}x LiteLLM proxy's",
            runner["requests_per_second"] >= GOAL_RATIO * proxy["requests_per_second"],
        ),
    ]
