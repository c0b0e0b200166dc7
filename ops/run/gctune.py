"""The flow process's garbage-collector thresholds (``billsync run``, ``run --from-file``, and
the benches that measure the flow).

CPython collects its youngest generation every 700 net allocations of container objects and
the oldest, which scans every tracked object, once enough survivors have piled up. The flow
allocates many short-lived containers per event (decoded rows, changes, targets, deltas,
emissions) and holds a large, acyclic long-lived state (rows and targets of open lines, freed
by reference counting when they leave), so most collections find nothing and the full ones
scan the whole state: at 200k events of ``bench core``'s stream (closes on), 7.8 % of the
decode+billing pass was spent in collections (1,146 young, 104 middle, 9 full ones taking
0.97 s), against 2.4 % at 20k — part of what grows with history; at 100k open lines one full
collection takes 0.33 s, a pause of the flow. With :data:`THRESHOLDS` the same pass spent
1.2 % (seven young collections, no full one), with the same line digests (BENCHMARKS.md,
"Garbage collection"). The cost: cyclic garbage (rare here: the state holds no cycles) waits
longer to be freed, up to 50,000 objects in the youngest generation.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)  # young collection every 50k allocations; full ones rarely


def tune_gc() -> None:
    """Set :data:`THRESHOLDS` for this process."""
    gc.set_threshold(*THRESHOLDS)
