"""The runner's Prometheus metrics, served at ``GET /metrics``.

Each app has its own registry (so runners in one process, as in the tests,
count apart). Requests are counted from their finished records, in one place
(:meth:`Metrics.observe`); what is state rather than events (calls in flight,
problems, store sync lag, OAuth2 token fetches) is read when scraped
(:class:`_StateCollector`). Label values are aliases, integration names and
the runner's own route and error names, never a caller's string: a request
for an unknown alias counts under ``alias=""``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from runner.observe.counting import Buckets, Count, Counters, Families, Histograms
from runner.observe.records import CallRecord, bounded_route, in_flight

# From a fraction of a millisecond (the runner's own overhead) to minutes (generations).
_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
)  # fmt: skip
_LIMIT_CODES = {"rate_limited": "rate", "concurrency_limited": "concurrency"}
StateReader = Callable[[], dict[str, Any]]
_SERIES_KEPT = 10_000


class _Series(NamedTuple):
    """The labelled series one kind of request counts in, looked up once per kind."""

    requests: Count
    duration: Buckets
    first_byte: Buckets
    attempts: Buckets
    tokens_in: Count
    tokens_out: Count


class Metrics:
    """The request metrics of one app, and the state it reports when scraped."""

    def __init__(self, state: StateReader) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        call = ["route", "alias", "integration"]
        self.requests = Counters(
            "runner_requests", "Requests answered, by route, alias, integration, status and "
            "error category (empty when it succeeded).", [*call, "status", "category"],
        )  # fmt: skip
        self.duration = Histograms(
            "runner_request_duration_seconds", "From the request's arrival to its last byte.",
            call, _BUCKETS,
        )  # fmt: skip
        self.first_byte = Histograms(
            "runner_time_to_first_byte_seconds",
            "From the request's arrival to the first byte of its answer's body.", call, _BUCKETS,
        )  # fmt: skip
        self.attempts = Histograms(
            "runner_upstream_attempt_duration_seconds",
            "Each attempt at the upstream (or handler), retries included, until its answer "
            "(or a stream's first chunk).", ["integration", "backend"], _BUCKETS,
        )  # fmt: skip
        self.retries = Counters(
            "runner_retries", "Upstream attempts after a call's first.", ["alias", "integration"]
        )
        self.refusals = Counters(
            "runner_limiter_refusals", "Calls refused by a rate or concurrency limit.",
            ["alias", "integration", "limit"],
        )  # fmt: skip
        self.slot_wait = Histograms(
            "runner_limiter_wait_seconds", "Time calls waited for a concurrency slot.",
            ["integration"], _BUCKETS,
        )  # fmt: skip
        self.tokens = Counters(
            "runner_tokens", "Tokens the upstream reported using, in (prompt) and out.",
            ["alias", "integration", "direction"],
        )  # fmt: skip
        counted = [self.requests, self.duration, self.first_byte, self.attempts, self.retries,
                   self.refusals, self.slot_wait, self.tokens]  # fmt: skip
        r.register(Families(counted))
        r.register(_StateCollector(state))
        self._series: dict[tuple[Any, ...], _Series] = {}

    def observe(self, record: CallRecord) -> None:
        """Count one finished request."""
        route = record.route or bounded_route(record.path)
        alias, integration = record.alias or "", record.integration or ""
        shape = (route, alias, integration, record.status, record.error_type or "", record.backend)
        series = self._series.get(shape)
        if series is None:
            series = self._series_of(*shape)
        series.requests.inc()
        ended = record.ended or time.perf_counter()
        series.duration.observe(ended - record.started)
        if record.first_byte is not None:
            series.first_byte.observe(record.first_byte - record.started)
        if record.attempts:
            for seconds in record.attempts:
                series.attempts.observe(seconds)
            if len(record.attempts) > 1:
                self.retries.labels(alias, integration).inc(len(record.attempts) - 1)
        limit = _LIMIT_CODES.get(record.error_code or "")
        if limit is not None:
            self.refusals.labels(alias, integration, limit).inc()
        if record.slot_wait:
            self.slot_wait.labels(integration).observe(record.slot_wait)
        if record.tokens_in is not None:
            series.tokens_in.inc(record.tokens_in)
        if record.tokens_out is not None:
            series.tokens_out.inc(record.tokens_out)

    def _series_of(
        self, route: str, alias: str, integration: str, status: int, category: str,
        backend: str | None,
    ) -> _Series:  # fmt: skip
        call = (route, alias, integration)
        series = _Series(
            self.requests.labels(*call, str(status), category),
            self.duration.labels(*call),
            self.first_byte.labels(*call),
            self.attempts.labels(integration, backend or ""),
            self.tokens.labels(alias, integration, "in"),
            self.tokens.labels(alias, integration, "out"),
        )
        if len(self._series) < _SERIES_KEPT:
            self._series[(route, alias, integration, status, category, backend)] = series
        return series

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _StateCollector(Collector):
    """What the runner's state says when scraped: calls in flight, problems, store sync
    lag and OAuth2 token fetches (``state()`` reads them from the integrations service)."""

    def __init__(self, state: StateReader) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        flying = GaugeMetricFamily(
            "runner_calls_in_flight", "Calls in flight in this process.", labels=["integration"]
        )
        for integration, count in sorted(in_flight.items()):
            flying.add_metric([integration], count)
        yield flying
        state = self.state()
        problems = GaugeMetricFamily(
            "runner_problems", "Config files, stored integrations and handlers with a problem.",
            labels=["kind"],
        )  # fmt: skip
        for kind, count in state.get("problems", {}).items():
            problems.add_metric([kind], count)
        yield problems
        lag = state.get("store_sync_lag_seconds")
        if lag is not None:
            yield GaugeMetricFamily(
                "runner_store_sync_lag_seconds",
                "Seconds since this runner last read the store's changes.",
                value=lag,
            )
        fetches = CounterMetricFamily(
            "runner_oauth2_token_fetches", "OAuth2 token requests, by integration and outcome.",
            labels=["integration", "outcome"],
        )  # fmt: skip
        for (integration, outcome), count in sorted(state.get("oauth2", {}).items()):
            fetches.add_metric([integration, outcome], count)
        yield fetches
        handlers = CounterMetricFamily(
            "runner_handler_files", "Handler files loaded, failed to load and reloaded after "
            "an edit, in this process.", labels=["event"],
        )  # fmt: skip
        for event in ("loaded", "load_failed", "reloaded"):
            handlers.add_metric([event], state.get("handler_events", {}).get(event, 0))
        yield handlers
        spans = state.get("trace_spans")
        if spans is not None:  # traces on
            exported = CounterMetricFamily(
                "runner_trace_spans", "Spans the trace exporter sent (exported), could not "
                "send (failed) and dropped from a full queue (dropped).", labels=["outcome"],
            )  # fmt: skip
            for outcome in ("exported", "failed", "dropped"):
                exported.add_metric([outcome], spans.get(outcome, 0))
            yield exported
