"""The observability scenario: the plain path with metrics, JSON access lines and traces
on, against the same runner with all three off, measured in the same run.

Both runners serve the small configuration; the "on" one logs every request at
info as JSON into a file (as a log shipper would read it), counts it for
``/metrics``, and exports its spans over OTLP/HTTP to the loopback upstream.
The share of all off's throughput is measured with each runner and "off" loaded
at once on one CPU (:mod:`bench.side_by_side`): the median over its passes of
each pass's ratio (:func:`bench.measure.paired_share`). Where processes cannot
be pinned, it falls back to the alternating passes each runner is also measured
alone in.
"""

from __future__ import annotations

from pathlib import Path

from . import measure, side_by_side
from .measure import Endpoint
from .targets import MODEL, Target, start_runner

ON = {"RUNNER_METRICS": "true", "RUNNER_ACCESS_LOG": "true", "RUNNER_LOG_FORMAT": "json",
      "RUNNER_LOG_LEVEL": "info"}  # fmt: skip
OFF = {"RUNNER_METRICS": "false", "RUNNER_ACCESS_LOG": "false"}
THROUGHPUT_SHARE = 0.85
ADDED_MS = 0.1
SAMPLED = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"}
NAMES = ("off", "on", "sampled")


def start(workdir: Path, upstream: str) -> list[Target]:
    """The runners, "off", "on" (its traces exported to the upstream, which takes OTLP)
    and "sampled" (the same, one trace in ten recorded), each with its own data folder."""
    config = workdir / "small"
    traces = {"OTEL_EXPORTER_OTLP_ENDPOINT": upstream}
    return [
        start_runner("observability off", config, {**OFF, "RUNNER_DATA_DIR": f"{config}-off"}),
        start_runner(
            "observability on",
            config,
            {**ON, **traces, "RUNNER_DATA_DIR": f"{config}-on"},
            log=workdir / "observability-on.log",
        ),
        start_runner(
            "observability on, traces sampled",
            config,
            {**ON, **traces, **SAMPLED, "RUNNER_DATA_DIR": f"{config}-sampled"},
            log=workdir / "observability-sampled.log",
        ),
    ]


def compare(upstream: str, runners: list[Target], rounds: int, seconds: float, tool: bool) -> dict:
    """Added p50 over the direct call (interleaved), each runner's throughput at 32
    connections alone, and its share of all off's throughput, measured with the two
    side by side (a third runner on the same CPU would make it a poorer machine
    than either meets alone)."""
    direct = Endpoint("direct", f"{upstream}/v1/chat/completions", measure.body(MODEL))
    ends = [
        Endpoint(name, f"{runner.url}/v1/chat/completions", measure.body(MODEL))
        for name, runner in zip(NAMES, runners, strict=True)
    ]
    figures = measure.added_and_throughput(direct, ends, rounds, seconds, tool)
    share: dict = {"method": "alternating passes", "passes": {}}
    for name, end, runner in zip(NAMES[1:], ends[1:], runners[1:], strict=True):
        passes = {"off": figures["off"]["passes"], name: figures[name]["passes"]}
        if side_by_side.available():
            pair = [(ends[0], runners[0]), (end, runner)]
            passes = side_by_side.rates(pair, seconds, tool)
            share["method"] = "side by side on one CPU"
        share[name] = measure.paired_share(passes[name], passes["off"])
        share["passes"][name] = passes
    return {**figures, "share": share}


def report_lines(figures: dict) -> list[str]:
    off, on, sampled, share = (figures[name] for name in (*NAMES, "share"))
    return [
        "",
        "Observability (plain path): metrics, JSON access lines and OTLP traces on "
        f"{on['added_p50_ms']:.2f} ms added p50, {on['requests_per_second']:,.0f} req/s "
        f"({share['on']:.0%} of all off); with one trace in ten sampled "
        f"{sampled['added_p50_ms']:.2f} ms, {sampled['requests_per_second']:,.0f} req/s "
        f"({share['sampled']:.0%}); all off {off['added_p50_ms']:.2f} ms, "
        f"{off['requests_per_second']:,.0f} req/s. Shares of all off's throughput "
        f"measured {share['method']}.",
    ]


def verdicts(figures: dict) -> list[tuple[str, bool]]:
    off, on = figures["off"], figures["on"]
    return [
        (
            f"observability on: throughput ≥ {THROUGHPUT_SHARE:.0%} of all off",
            figures["share"]["on"] >= THROUGHPUT_SHARE,
        ),
        (
            f"observability on: added p50 ≤ off + {ADDED_MS} ms",
            on["added_p50_ms"] <= off["added_p50_ms"] + ADDED_MS,
        ),
    ]
