"""N shard engines in one process: the partitioned step's semantics, without a dataflow.

:class:`ShardedEngine` applies every change to every shard's engine, hands the final
segments a close made in one shard to the others before the next change, and folds the
shards' deltas into one (:func:`~dataflows.billing.shards.merge_shards`). The dataflow
does the same across workers and processes (ARCHITECTURE.md, "Partitioning"); this is its
reference, what the property tests compare with one engine, and what ``bench core`` times
per shard.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from billsync.change import Change
from dataflows.billing.engine import BillingEngine
from dataflows.billing.mappings import Mappings
from dataflows.billing.shards import merge_shards
from dataflows.billing.target import Delta, LineKey, LineTarget, ScheduleLine


class ShardedEngine:
    """``shards`` engines, each evaluating the items of its contracts."""

    def __init__(self, mappings: Mappings, shards: int) -> None:
        self.engines = [BillingEngine(mappings, shard=(i, shards)) for i in range(shards)]
        # per shard, the seconds its engine spent (applying, importing): what a worker of its
        # own would spend; the merge is not a shard's work
        self.spent = [0.0] * shards

    def apply(self, change: Change) -> Delta:
        return self.apply_unit([change])[0]

    def apply_unit(self, changes: Sequence[Change]) -> list[Delta]:
        """One source transaction on every shard; per delta position, the merged delta."""
        made = []
        per_shard = []
        spent = self.spent
        for i, engine in enumerate(self.engines):
            began = time.perf_counter()
            since = engine.finals.next_seq
            per_shard.append(engine.apply_unit(changes))
            made.append(engine.own_segments(since))
            spent[i] += time.perf_counter() - began
        if any(made):  # what the others' closes made final
            for i, engine in enumerate(self.engines):
                began = time.perf_counter()
                engine.import_finals([seg for j, segs in enumerate(made) if j != i for seg in segs])
                spent[i] += time.perf_counter() - began
        return [merge_shards(ds) for ds in zip(*per_shard, strict=True)]

    @property
    def lines(self) -> dict[LineKey, LineTarget]:
        return {k: t for engine in self.engines for k, t in engine.lines.items()}

    @property
    def schedule(self) -> dict[str, ScheduleLine]:
        return {k: s for engine in self.engines for k, s in engine.schedule.items()}
