"""W3C Trace Context in and out, and which traces are recorded (the sampler).

Both follow what the OpenTelemetry SDK does with the same settings, so that a
trace a caller started is continued as their SDK would, and a ratio samples
the same trace ids the SDK's ``TraceIdRatioBased`` would:
``OTEL_TRACES_SAMPLER`` is ``always_on``, ``always_off``, ``traceidratio`` or
``parentbased_`` one of those (the default, ``parentbased_always_on``), with
the ratio in ``OTEL_TRACES_SAMPLER_ARG``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

log = logging.getLogger(__name__)
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_TRACESTATE = re.compile(r"[ -~]{1,512}")
_LOW_64 = (1 << 64) - 1


class Parent(NamedTuple):
    """A caller's span, from its ``traceparent`` (and ``tracestate``)."""

    trace_id: int
    span_id: int
    sampled: bool
    trace_state: str


def parent_from(traceparent: bytes, tracestate: bytes = b"") -> Parent | None:
    """The caller's span, or None when the header is not a valid W3C ``traceparent``."""
    match = _TRACEPARENT.fullmatch(traceparent.decode("latin-1").strip())
    if match is None:
        return None
    version, trace_hex, span_hex, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        return None
    trace_id, span_id = int(trace_hex, 16), int(span_hex, 16)
    if not trace_id or not span_id:
        return None
    state = tracestate.decode("latin-1").strip()
    state = state if _TRACESTATE.fullmatch(state) else ""
    return Parent(trace_id, span_id, bool(int(flags, 16) & 1), state)


def traceparent(trace_id: int, span_id: int, sampled: bool) -> str:
    return (_SAMPLED if sampled else _NOT_SAMPLED) % (trace_id, span_id)


# %-formatting: a third cheaper than an f-string's format specs, on every traced call
_SAMPLED, _NOT_SAMPLED = "00-%032x-%016x-01", "00-%032x-%016x-00"


@dataclass(frozen=True)
class Sampler:
    """Whether a trace is recorded: as its parent was (when ``follow_parent`` and there is
    one), else when the low 64 bits of its id are below ``bound``."""

    follow_parent: bool
    bound: int

    def sampled(self, trace_id: int, parent: Parent | None) -> bool:
        if parent is not None and self.follow_parent:
            return parent.sampled
        return (trace_id & _LOW_64) < self.bound

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] = os.environ) -> Sampler:
        name = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower() or "parentbased_always_on"
        root = name.removeprefix("parentbased_")
        known = {"always_on": 1.0, "always_off": 0.0, "traceidratio": None}
        if root not in known:
            log.warning("OTEL_TRACES_SAMPLER=%r is not known; using parentbased_always_on", name)
            return cls(True, 1 << 64)
        rate = known[root]
        if rate is None:
            raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "").strip()
            try:
                rate = float(raw) if raw else 1.0
                if not 0.0 <= rate <= 1.0:
                    raise ValueError
            except ValueError:
                log.warning("OTEL_TRACES_SAMPLER_ARG=%r is not a ratio in [0, 1]; using 1", raw)
                rate = 1.0
        return cls(name != root, round(rate * (1 << 64)))
