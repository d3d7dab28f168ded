"""Counters and histograms for the request metrics, counted in plain Python and
handed to ``prometheus_client`` as metric families when scraped.

The client library's own ``Counter`` and ``Histogram`` take a lock for every
increment and find a histogram's bucket with a loop in Python: some 12 µs of
CPU for the five observations of one plain request under load, measured in
the Recorder's batches. The runner counts on its event loop only (the
Recorder and the scrape both run there), so a slot increment and a
``bisect`` do: about a quarter of that.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from itertools import accumulate

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString


class Count:
    """One counter series."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float = 0

    def inc(self, amount: float = 1) -> None:
        self.value += amount


class Buckets:
    """One histogram series: how many observations fell in each bucket, and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last for +Inf
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # le: the first bound ≥ value
        self.sum += value


class Counters:
    """A counter's series by their label values, as the client library's ``labels()``."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str]) -> None:
        self.name, self.documentation, self.label_names = name, documentation, list(labels)
        self._series: dict[tuple[str, ...], Count] = {}

    def labels(self, *values: str) -> Count:
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = Count()
        return series

    def metric(self) -> Metric:
        counter = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, count in self._series.items():
            counter.add_metric(list(values), count.value)
        return counter


class Histograms:
    """A histogram's series by their label values, each with ``bounds`` for buckets."""

    def __init__(
        self, name: str, documentation: str, labels: Sequence[str], bounds: Sequence[float]
    ) -> None:
        self.name, self.documentation, self.label_names = name, documentation, list(labels)
        self.bounds = tuple(bounds)
        self._edges = [*(floatToGoString(b) for b in bounds), "+Inf"]
        self._series: dict[tuple[str, ...], Buckets] = {}

    def labels(self, *values: str) -> Buckets:
        series = self._series.get(values)
        if series is None:
            series = self._series[values] = Buckets(self.bounds)
        return series

    def metric(self) -> Metric:
        histogram = HistogramMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, series in self._series.items():
            cumulative = zip(self._edges, accumulate(series.counts), strict=True)
            histogram.add_metric(list(values), list(cumulative), series.sum)
        return histogram


class Families(Collector):
    """Counters and histograms, for a ``CollectorRegistry``."""

    def __init__(self, families: Sequence[Counters | Histograms]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.metric()
