"""The runner's own counters and histograms expose what ``prometheus_client``'s would
for the same observations (bucket edges included), less the ``_created`` samples."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from runner.observe.counting import Counters, Families, Histograms

BOUNDS = (0.0005, 0.001, 0.0025, 1.0, 300.0)
SEEN = (0.0, 0.0005, 0.00050001, 0.001, 0.7, 1.0, 299.9, 300.0, 300.1, 5e6)


def _exposed(registry: CollectorRegistry) -> list[str]:
    text = generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if "_created" not in line)


def test_counts_and_buckets_are_exposed_as_the_client_library_exposes_them():
    theirs, ours = CollectorRegistry(), CollectorRegistry()
    their_counter = Counter("calls", "Calls.", ["alias"], registry=theirs)
    their_histogram = Histogram("took_seconds", "Took.", ["alias"], buckets=BOUNDS, registry=theirs)
    our_counter = Counters("calls", "Calls.", ["alias"])
    our_histogram = Histograms("took_seconds", "Took.", ["alias"], BOUNDS)
    ours.register(Families([our_counter, our_histogram]))
    for n, seconds in enumerate(SEEN):
        alias = "A" if n % 3 else "B"
        their_counter.labels(alias).inc(n)
        our_counter.labels(alias).inc(n)
        their_histogram.labels(alias).observe(seconds)
        our_histogram.labels(alias).observe(seconds)
    assert _exposed(ours) == _exposed(theirs)
    # a value on a bucket's edge counts in that bucket
    assert 'took_seconds_bucket{alias="A",le="0.0005"} 1.0' in _exposed(ours)
