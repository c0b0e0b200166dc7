"""Incremental snapshots of the billing step: a base, and a journal of the units since.

Bytewax calls the step's ``snapshot()`` at the end of every epoch in which it changed, and
stores the bytes it returns. Pickling the whole engine there makes every epoch pay for all
open state (seconds at 100k open lines, BENCHMARKS.md) however little changed. With a
segment directory (beside the recovery store, :mod:`dataflows.snapshots`) the step instead
keeps, as files written once:

- a **base**: the engine state pickled whole (``base-<generation>-<sha256>.seg``);
- a **journal**: per epoch since the base, one file with the units the engine applied in
  that epoch, in order (``journal-<generation>-<seq>-<sha256>.seg``).

The bytes Bytewax stores per epoch are then a :class:`Journaled` reference (the file names),
the applied offsets and the ordering stage's held changes, and the epoch's work is pickling
what it applied: proportional to what changed, not to the state. Restoring loads the base
and applies the journal's units again with the engine (pure and deterministic: the same
units on the same state give the same state), discarding the deltas (their emissions
reached the writer before the snapshot did).

**Compaction** (a new base, the next generation) happens at the snapshot of an epoch when

- the journal holds at least ``max(min_changes, size of the base)`` changes (size: open
  lines plus source rows when the base was written), so a base costs about one state-sized
  pickle per state-sized number of changes (constant per change, amortised) and a restore
  replays at most about as many changes as the base holds;
- the epoch closed or reopened a period, or the step adopted changed mappings at start (so a
  journal never holds a close, a reopen or a re-evaluation: see the rules-upgrade note);
- there is no base yet (the first snapshot of a fresh step).

A compaction epoch pays the whole pickle (``bench state``: ``compaction_s``). Files of
generations before the last :data:`KEEP_GENERATIONS` are deleted at a compaction once they
are older than the retention (the recovery store's backup interval): Bytewax resumes from
the latest or the one before latest epoch, whose snapshots name the current or the previous
generation; a backup restored from up to that interval ago still finds its files.

**Rules upgrades.** The journal replays units with the running code. When that code's
:data:`~dataflows.billing.rules.RULES_VERSION` differs from the one that wrote the journal,
the replayed lines hold targets of the new rules while the ERP holds those of the old; the
step then re-emits the current target of every line and milestone the journal touched
(:attr:`Replayed.touched`; the writer posts only differences from what it holds), and the
stale-rules re-evaluation of every item follows as before (``dataflows/logic.py``).
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from billsync.change import Change
from billsync.errors import StackError
from dataflows.billing.engine import BillingEngine, EngineState
from dataflows.billing.rules import RULES_VERSION
from dataflows.billing.target import Delta, LineKey, LineUpdate, ScheduleUpdate
from dataflows.snapshots import SegmentStore, dumps, loads

MIN_CHANGES = 20_000  # below this many journaled changes a base is not rewritten
KEEP_GENERATIONS = 3  # the current generation and the two before it are never deleted
_GENERATION = re.compile(r"^(?:base|journal)-(\d{10})-")

# one journaled unit: its changes, and the line keys and milestone ids its deltas touched
Entry = tuple[tuple[Change, ...], tuple[LineKey, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Journaled:
    """What a snapshot holds instead of the engine state: the files to rebuild it from."""

    generation: int
    base: str
    entries: tuple[str, ...] = ()
    changes: int = 0  # changes in the entries
    base_size: int = 0  # open lines plus source rows in the base
    rules_version: int = RULES_VERSION  # of the code that wrote the entries


@dataclass(frozen=True, slots=True)
class Replayed:
    """An engine rebuilt from a :class:`Journaled`; ``touched``: a re-emission of the lines and
    milestones the journal touched when it was written by other rules (else empty)."""

    engine: BillingEngine
    touched: Delta = field(default_factory=Delta)


def _state_size(engine: BillingEngine) -> int:
    state = engine.state
    return len(state.lines) + sum(len(rows) for rows in state.rows.values())


class Journal:
    """The base and journal files of one billing step (see the module docstring)."""

    def __init__(
        self,
        store: SegmentStore,
        *,
        retain_s: float = 0.0,
        min_changes: int = MIN_CHANGES,
        ref: Journaled | None = None,
    ) -> None:
        self._store = store
        self._retain_s = retain_s
        self._min_changes = min_changes
        self._ref = ref
        self._pending: list[Entry] = []
        self._pending_changes = 0
        self._compact = ref is None

    def record(self, changes: Sequence[Change], deltas: Sequence[Delta]) -> None:
        """A unit the engine applied, with the deltas it returned."""
        if any(d.period is not None for d in deltas):
            self._compact = True
        if self._compact:
            return  # the next snapshot writes a base that includes it
        lines = tuple(u.key for d in deltas for u in d.lines)
        schedule = tuple(s.milestone_id for d in deltas for s in d.schedule)
        self._pending.append((tuple(changes), lines, schedule))
        self._pending_changes += len(changes)

    def compact_next(self) -> None:
        """Write a base at the next snapshot (the state changed outside a unit)."""
        self._compact = True

    def snapshot(self, engine: BillingEngine) -> Journaled:
        """At an epoch's end: a new base, or this epoch's units as one more journal file."""
        ref = self._ref
        changes = (ref.changes if ref is not None else 0) + self._pending_changes
        if self._compact or ref is None or changes >= max(self._min_changes, ref.base_size):
            generation = ref.generation + 1 if ref is not None else 1
            base = self._store.put(f"base-{generation:010d}", dumps(engine.snapshot(), self._store))
            self._ref = Journaled(generation, base, base_size=_state_size(engine))
            self._sweep(generation)
        elif self._pending:
            blob = dumps(self._pending, self._store)
            name = self._store.put(f"journal-{ref.generation:010d}-{len(ref.entries):08d}", blob)
            self._ref = dataclasses.replace(ref, entries=(*ref.entries, name), changes=changes)
        self._pending = []
        self._pending_changes = 0
        self._compact = False
        assert self._ref is not None
        return self._ref

    def _sweep(self, generation: int) -> None:
        """Delete the files of generations before the kept ones, once past the retention."""
        directory = self._store.directory
        if not directory.exists():
            return
        oldest_kept = generation - KEEP_GENERATIONS + 1
        cutoff = time.time() - self._retain_s
        for path in directory.glob("*.seg"):
            found = _GENERATION.match(path.name)
            if found and int(found.group(1)) < oldest_kept and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)


def replay(ref: Journaled, store: SegmentStore) -> Replayed:
    """Rebuild the engine a :class:`Journaled` names: its base, then its units again."""
    state = loads(store.read(ref.base), store)
    if not isinstance(state, EngineState):
        raise StackError("recovery", f"{store.directory / ref.base} does not hold an engine")
    engine = BillingEngine.restore(state)
    other_rules = ref.rules_version != RULES_VERSION
    lines: set[LineKey] = set()
    schedule: set[str] = set()
    for name in ref.entries:
        entries: list[Entry] = loads(store.read(name), store)
        for changes, touched_lines, touched_schedule in entries:
            engine.apply_unit(changes)
            if other_rules:
                lines.update(touched_lines)
                schedule.update(touched_schedule)
    if not other_rules:
        return Replayed(engine)
    return Replayed(engine, _current(engine, lines, schedule))


def _current(engine: BillingEngine, lines: set[LineKey], schedule: set[str]) -> Delta:
    """The current targets of ``lines`` and ``schedule`` as updates (final lines excluded:
    a journal holds no close, so they were final before it and the writer has them)."""
    return Delta(
        lines=tuple(
            LineUpdate(k, None, engine.lines.get(k))
            for k in sorted(lines)
            if engine.finals.find(k) is None
        ),
        schedule=tuple(ScheduleUpdate(m, None, engine.schedule.get(m)) for m in sorted(schedule)),
    )
