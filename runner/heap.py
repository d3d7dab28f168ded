"""The cyclic garbage collector, set for a server: long-lived objects kept out of its
full passes, and its youngest generation collected less often.

A started runner holds some 140,000 objects it will never free (its modules,
FastAPI's routes and models), and some 400,000 once LiteLLM is imported. Each
full collection walks all of them: about 80 ms, or 200 ms with LiteLLM, of a
stopped event loop. Under load a full collection comes every second or two,
since every request in flight when a younger collection runs is promoted
towards the oldest generation; on the plain path that was some 60 µs of CPU per
request, a seventh of all the runner spent, and a pause in p99 (measured with
``gc.callbacks`` at 32 connections). ``gc.freeze`` moves every object alive now
out of the collector's sight, so later passes walk only what came after; it
takes microseconds. Objects frozen are still freed when nothing refers to them;
only a cycle among them, if one is garbage at the freeze, is never collected.

The youngest generation is collected once allocations outnumber frees by 700,
Python's default. Under load that count is mostly the objects of the requests in
flight, alive and walked again at every pass: a plain request paid for walking
its neighbours, about 8% of the runner's throughput at 32 connections (measured
side by side with the bench's pinned pairs), and more with the metrics, access
lines and traces waiting for their batch. At 50,000 a pass comes when cyclic
garbage has gathered rather than every few requests: the plain path serves 9%
more requests per second. A pass then
walks at most some 50,000 young objects, a few milliseconds every few seconds
under load; the garbage waiting for it is a few megabytes at most.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 50_000


def freeze_long_lived() -> None:
    """Call once what is loaded is there to stay: after start, after importing LiteLLM."""
    gc.freeze()


def collect_young_less_often() -> None:
    """The youngest generation's threshold raised to :data:`YOUNG_THRESHOLD`; the older
    generations' left as they were. Once per serving process."""
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
