"""The benchmark keeps working: a seconds-long smoke run, never a timed assertion."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.measure import paired_share

from .helpers import REPO


def test_benchmark_smoke_run(tmp_path: Path):
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--smoke",
            "--upstream",
            "builtin",
            "--load",
            "python",
            "--json",
            str(out),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["upstream"] == "built-in asyncio server"
    assert results["load_generator"] == "bench.load (asyncio)"
    assert set(results["targets"]) == {"direct", "runner", "runner_many", "litellm_proxy"}
    for name in ("runner", "runner_many", "litellm_proxy"):
        figures = results["targets"][name]
        assert figures["peak_rss_mb"] > 0 and figures["p50_ms"] > 0
    assert results["targets"]["runner"]["requests_per_second"] > 0
    assert "| **runner ÷ proxy** |" in result.stdout
    assert set(results["register_one_more_ms"]) == {"plain", "handler"}
    for scenario in ("handler", "anthropic"):  # each against LiteLLM's proxy, both answering
        assert set(results[scenario]) == {"runner", "litellm_proxy"}
        assert all(f["requests_per_second"] > 0 for f in results[scenario].values())
    assert "Anthropic-format endpoint" in result.stdout
    observed = results["observability"]
    assert set(observed) == {"off", "on", "sampled", "share"}
    assert all(observed[name]["requests_per_second"] > 0 for name in ("off", "on", "sampled"))
    share = observed.pop("share")
    assert share["method"] == "side by side on one CPU"  # Linux: the runners can be pinned
    for name in ("on", "sampled"):  # each measured beside "off"
        passes = share["passes"][name]
        assert set(passes) == {"off", name}
        assert all(len(rates) == 8 and min(rates) > 0 for rates in passes.values())
        assert share[name] == paired_share(passes[name], passes["off"])
    assert "Observability (plain path)" in result.stdout
    store = results["store"]
    assert store["startup"]["stored"] == 100
    assert store["startup"]["load_seconds"] > 0
    assert store["startup"]["process_to_healthy_seconds"] > store["startup"]["load_seconds"]
    assert set(store["post_ms"]) == {"10", "1000"}
    assert "stored integrations" in result.stdout


def test_a_share_compares_each_pass_with_the_pass_beside_it():
    """The machine slowed down for the last two pairs. Pass by pass the target kept 95%,
    85%, 90% and 90% of the base: 90%. The ratio of the medians (60.5 / 70) would say 86%."""
    target, base = [95, 85, 36, 36], [100, 100, 40, 40]
    assert paired_share(target, base) == pytest.approx(0.9)
