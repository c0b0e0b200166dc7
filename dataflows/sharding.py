"""The partitioned billing step (``BILLSYNC_SHARDS`` > 1): sequencer, shards, merge.

Data path (ARCHITECTURE.md, "Partitioning")::

    changes ─► key "billing" ─► sequence: ordering stage, one numbered sequence of units
            ─► every unit to every shard key ─► shard i: an engine evaluating its contracts
            ─► key "merge" ─► merge: the shards' deltas of each unit folded into one, in order
            ─► the one ERP writer (unchanged: it sees the stream one engine would emit)

:class:`SequencerLogic` is today's ordering stage (:mod:`dataflows.ordering`) plus a counter:
it numbers each released unit and sends it to every shard, so every shard applies the same
units in the same order (Bytewax delivers what one worker sends to a key in the order sent).
A unit that changes accounting periods is a **barrier**: after it each shard writes the
final segments its closes made to the exchange directory (``close-<execution>-<seq>-<shard>``),
and the sequencer holds every later unit until all shards' files exist; each shard imports
the others' before its next unit (:meth:`~dataflows.billing.engine.BillingEngine.import_finals`),
so at every unit all shards agree on which items are final. The execution number is the
sequencer's, raised at every start and kept in its snapshot: a resumed run never reads a
file a crashed run wrote after its snapshot.

:class:`ShardLogic` holds one :class:`~dataflows.billing.engine.BillingEngine` of
``(shard, shards)`` with its own base and journal (:mod:`dataflows.journal`) in
``<segment_dir>/shard-<i>``; it answers each unit with a :class:`Bundle` of its deltas.
:class:`MergeLogic` waits for every shard's bundle of a unit, folds them
(:func:`~dataflows.billing.shards.merge_shards`) and emits what
:class:`~dataflows.logic.BillingLogic` emits for one engine: the ``resumed`` marker, the
resync, re-evaluations, then per unit its emissions, dead letters and ``Progress``.
"""

from __future__ import annotations

import functools
import pickle
import tempfile
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.operators import StatefulLogic

from billsync.errors import ConfigError
from dataflows.billing.engine import BillingEngine
from dataflows.billing.finals import FinalSegment
from dataflows.billing.mappings import Mappings
from dataflows.billing.shards import merge_shards
from dataflows.billing.target import Delta
from dataflows.emissions import Emission, Progress
from dataflows.journal import MIN_CHANGES, Compaction, Journal, Journaled, replay
from dataflows.logic import REEVALUATION, RESYNC, Output, emissions, marks_of, unit_emissions
from dataflows.ordering import Ordered, TxOrderer, Unit, advance, feed, orderer_factory
from dataflows.placement import worker_of
from dataflows.progress import PROGRESS
from dataflows.snapshots import SegmentStore, dumps, loads

MERGE_KEY = "merge"
_REBUILD = (
    "keep the count; or move the recovery store aside and run `billsync run --rebuild` "
    "(ops/README.md, 'Losing the recovery store'): the writer posts only differences"
)
PERIODS = "accounting_periods"
_POLL = timedelta(milliseconds=2)  # how often a held sequencer looks for the exchange files


@functools.cache  # a few SipHash computations per shard, once per process
def shard_key(shard: int) -> str:
    """The Bytewax key of shard ``shard``: ``shard-<i>``, or ``shard-<i>.<n>`` for the first
    ``n`` that Bytewax routes to worker ``i mod 8`` (so ``mod 4``, ``mod 2``: the shards of a
    cluster of 2, 4 or 8 workers each on its own worker; :mod:`dataflows.placement`). Part of
    the recovery state: never change the rule."""
    name = f"shard-{shard}"
    n = 0
    while worker_of(name, 8) != shard % 8:
        n += 1
        name = f"shard-{shard}.{n}"
    return name


@dataclass(frozen=True, slots=True)
class Numbered:
    """What the sequencer sends each shard: unit ``seq`` of execution ``execution``, or (no
    unit) the start token, which asks every shard for its resync."""

    execution: int
    seq: int
    shard: int
    unit: Unit | None = None
    barrier: bool = False  # the unit changes accounting periods: exchange final segments
    covers: tuple[tuple[str, int], ...] | None = None  # start token: offsets applied; None: fresh


@dataclass(frozen=True, slots=True)
class UnitMarks:
    """What the merge emits of a unit besides its deltas (shard 0 sends it, not the whole
    unit again): each change's source position (as the ledger stores it) and source time,
    the unit's dead letters and the offsets it covers."""

    marks: tuple[tuple[str, datetime | None], ...]
    letters: tuple[dict[str, Any], ...]
    covers: tuple[tuple[str, int], ...]

    @classmethod
    def of(cls, unit: Unit) -> UnitMarks:
        return cls(marks_of(unit.changes), unit.letters, unit.covers)


@dataclass(frozen=True, slots=True)
class Bundle:
    """A shard's answer to one :class:`Numbered`: its deltas (per delta of the unit) and the
    latest closed period before the unit; shard 0 also carries what the merge emits once."""

    seq: int
    shard: int
    deltas: tuple[Delta, ...] = ()
    closed: str | None = None
    unit: UnitMarks | None = None  # shard 0 only
    start: tuple[Delta, Delta, Delta] | None = None  # start token: resync, touched, re-evaluated
    covers: tuple[tuple[str, int], ...] | None = None  # start token, shard 0: as Numbered


# what crosses Bytewax's exchange in the sharded step, pickled by constructor
# (dataflows.snapshots.pickle_by_constructor) besides the rows, changes and targets
EXCHANGED: tuple[type, ...] = (Numbered, Bundle, UnitMarks, Unit, Emission, Progress)


def exchange_name(execution: int, seq: int, shard: int) -> str:
    return f"close-{execution:06d}-{seq:012d}-{shard:03d}.seg"


class SequencerLogic(StatefulLogic[Ordered, tuple[str, Numbered], bytes]):
    """The ordering stage of every source, numbering the units it releases for the shards."""

    def __init__(
        self,
        resume: bytes | None,
        shards: int,
        exchange: Path,
        new_orderer: Callable[[str], TxOrderer] | None = None,
    ) -> None:
        self._shards = shards
        self._exchange = exchange
        self._new_orderer = new_orderer or orderer_factory(())
        self._orderers: dict[str, TxOrderer] = {}
        self._applied: dict[str, int] = {}
        self._seq = 0
        self._execution = 1
        self._held: deque[Unit] = deque()
        self._waiting: tuple[int, int] | None = None
        covers: tuple[tuple[str, int], ...] | None = None
        if resume is not None:
            state = pickle.loads(resume)  # noqa: S301  # our own snapshot bytes
            (shards_then, self._orderers, self._applied, self._seq, execution, self._held,
             self._waiting) = state  # fmt: skip
            if shards_then != shards:
                raise ConfigError(
                    f"the recovery store was written with {shards_then} shards, not {shards}",
                    field="BILLSYNC_SHARDS",
                    fix=_REBUILD,
                )
            self._execution = execution + 1
            covers = tuple(sorted(self._applied.items()))
        self._pending: list[tuple[str, Numbered]] = self._broadcast(None, covers=covers)

    def _broadcast(
        self, unit: Unit | None, *, covers: tuple[tuple[str, int], ...] | None = None
    ) -> list[tuple[str, Numbered]]:
        self._seq += 1
        barrier = unit is not None and any(c.table == PERIODS for c in unit.changes)
        out = [
            (shard_key(i), Numbered(self._execution, self._seq, i, unit, barrier, covers))
            for i in range(self._shards)
        ]
        if unit is not None:
            advance(self._applied, unit.covers)
        if barrier:
            self._waiting = (self._execution, self._seq)
        return out

    def _release(self, out: list[tuple[str, Numbered]]) -> None:
        """Send the held units up to (and including) the next barrier."""
        while self._held and self._waiting is None:
            out += self._broadcast(self._held.popleft())

    def _exchanged(self) -> bool:
        """Every shard wrote its final segments of the barrier the sequencer waits for."""
        if self._waiting is None:
            return True
        execution, seq = self._waiting
        names = (exchange_name(execution, seq, i) for i in range(self._shards))
        if all((self._exchange / n).exists() for n in names):
            self._waiting = None
            return True
        return False

    def on_item(self, value: Ordered) -> tuple[Iterable[tuple[str, Numbered]], bool]:
        out, self._pending = self._pending, []
        self._held.extend(feed(self._orderers, self._new_orderer, value))
        if self._exchanged():
            self._release(out)
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[tuple[str, Numbered]], bool]:
        out, self._pending = self._pending, []
        if self._exchanged():
            self._release(out)
        return out, StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[tuple[str, Numbered]], bool]:
        return self.on_notify()

    def notify_at(self) -> datetime | None:
        if self._pending:
            return datetime.now(UTC)
        if self._waiting is not None:
            return datetime.now(UTC) + _POLL
        return None

    def snapshot(self) -> bytes:
        state = (self._shards, self._orderers, self._applied, self._seq, self._execution,
                 self._held, self._waiting)  # fmt: skip
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)


class ShardLogic(StatefulLogic[Numbered, Bundle, bytes]):
    """One shard's engine: applies every unit, evaluates the items of its contracts."""

    def __init__(
        self,
        mappings: Mappings,
        resume: bytes | None,
        shards: int,
        segment_dir: Path,
        exchange: Path,
        *,
        retain_s: float = 0.0,
        journal_min_changes: int = MIN_CHANGES,
        compaction: Compaction = "inline",
    ) -> None:
        self._mappings = mappings
        self._shards = shards
        self._segment_dir = segment_dir
        self._exchange = SegmentStore(exchange)
        self._retain_s = retain_s
        self._min_changes = journal_min_changes
        self._compaction: Compaction = compaction
        self._engine: BillingEngine | None = None
        self._journal: Journal | None = None
        self._store: SegmentStore | None = None
        self._import: tuple[int, int] | None = None  # barrier whose files to import
        self._start: tuple[Delta, Delta, Delta] = (Delta(), Delta(), Delta())
        if resume is not None:
            self._resume(resume)

    def _open(self, shard: int) -> SegmentStore:
        """Shard ``shard``'s directory of base and journal files."""
        store = self._store = SegmentStore(self._segment_dir / f"shard-{shard}")
        return store

    def _new_journal(self, ref: Journaled | None = None) -> Journal:
        assert self._store is not None
        self._journal = Journal(self._store, retain_s=self._retain_s,
                                min_changes=self._min_changes, ref=ref,
                                compaction=self._compaction)  # fmt: skip
        return self._journal

    def _resume(self, blob: bytes) -> None:
        shard, nested = pickle.loads(blob)  # noqa: S301  # our own snapshot bytes
        store = self._open(shard)
        ref, self._import = loads(nested, store)
        assert isinstance(ref, Journaled)
        rebuilt = replay(ref, store)
        engine = self._engine = rebuilt.engine
        journal = self._new_journal(ref)
        if rebuilt.periods:
            journal.compact_next()
        reevaluated = Delta()
        if engine.fingerprint != self._mappings.fingerprint:
            journal.compact_next()
            reevaluated = engine.with_mappings(self._mappings)
        self._start = (engine.current(), rebuilt.touched, reevaluated)

    def _engine_for(self, shard: int) -> BillingEngine:
        if self._engine is None:  # a fresh shard: its first item says which one it is
            self._open(shard)
            self._new_journal()
            self._engine = BillingEngine(self._mappings, shard=(shard, self._shards))
        return self._engine

    def on_item(self, value: Numbered) -> tuple[Iterable[Bundle], bool]:
        PROGRESS.work()
        engine = self._engine_for(value.shard)
        self._import_finals(engine)
        if value.unit is None:  # the start token
            start, self._start = self._start, (Delta(), Delta(), Delta())
            bundle = Bundle(value.seq, value.shard, closed=engine.closed_through,
                            start=start, covers=value.covers)  # fmt: skip
            return [bundle], StatefulLogic.RETAIN
        unit = value.unit
        since = engine.finals.next_seq
        closed = engine.closed_through
        deltas = engine.apply_unit(unit.changes)
        assert self._journal is not None
        self._journal.record(unit.changes, deltas)
        if value.barrier:
            made = engine.own_segments(since)
            name = exchange_name(value.execution, value.seq, value.shard)
            blob = pickle.dumps(made, protocol=pickle.HIGHEST_PROTOCOL)
            self._exchange.write(name, lambda fh: fh.write(blob))
            self._import = (value.execution, value.seq)
        bundle = Bundle(value.seq, value.shard, tuple(deltas), closed,
                        unit=UnitMarks.of(unit) if value.shard == 0 else None)  # fmt: skip
        return [bundle], StatefulLogic.RETAIN

    def _import_finals(self, engine: BillingEngine) -> None:
        """Before the next unit: the final segments the other shards' closes made."""
        if self._import is None:
            return
        execution, seq = self._import
        me = engine.shard[0]
        segments: list[FinalSegment] = []
        for i in range(self._shards):
            if i != me:
                blob = self._exchange.read(exchange_name(execution, seq, i))
                segments += pickle.loads(blob)  # noqa: S301  # written by our shards
        if segments:
            engine.import_finals(segments)
            assert self._journal is not None
            self._journal.record_import(segments)
        self._import = None

    def snapshot(self) -> bytes:
        assert self._engine is not None and self._journal is not None
        ref = self._journal.snapshot(self._engine)
        nested = dumps((ref, self._import), self._store)
        return pickle.dumps((self._engine.shard[0], nested), protocol=pickle.HIGHEST_PROTOCOL)


@dataclass
class MergeLogic(StatefulLogic[Bundle, Output, bytes]):
    """The shards' bundles of each unit folded into what one engine would emit, in order."""

    shards: int
    waiting: dict[int, dict[int, Bundle]] = field(default_factory=dict)
    _low: int | None = None  # the lowest unit number waiting (derived)

    def __post_init__(self) -> None:
        self._low = min(self.waiting) if self.waiting else None

    @classmethod
    def build(cls, shards: int, resume: bytes | None) -> MergeLogic:
        if resume is None:
            return cls(shards)
        return cls(shards, pickle.loads(resume))  # noqa: S301  # our own snapshot bytes

    def on_item(self, value: Bundle) -> tuple[Iterable[Output], bool]:
        PROGRESS.work()
        waiting = self.waiting
        waiting.setdefault(value.seq, {})[value.shard] = value
        low = self._low
        if low is None or value.seq < low:
            low = value.seq
        out: list[Output] = []
        # a unit is complete once every shard answered it; each shard answers in order, so
        # the units complete in order, and their numbers follow each other
        while low is not None:
            got = waiting.get(low)
            if got is None or len(got) < self.shards:
                break
            del waiting[low]
            self._emit([got[i] for i in range(self.shards)], out)
            low = low + 1 if low + 1 in waiting else (min(waiting) if waiting else None)
        self._low = low
        return out, StatefulLogic.RETAIN

    @staticmethod
    def _emit(bundles: list[Bundle], out: list[Output]) -> None:
        first = bundles[0]
        if first.start is not None:  # the start token
            if first.covers is None:  # a fresh run: nothing to resync
                out.append(Progress((), resumed=True))
                return
            closed = first.closed
            resync, touched, reevaluated = (
                merge_shards([b.start[k] for b in bundles if b.start is not None]) for k in range(3)
            )
            out.append(Progress(first.covers, resumed=True))
            out += emissions(resync, RESYNC, None, closed)
            out.append(Progress((), resync=True))
            for delta in (touched, reevaluated):
                if delta.lines or delta.schedule:
                    out += emissions(delta, REEVALUATION, None, closed)
                    out.append(Progress(()))
            return
        unit = first.unit
        assert unit is not None
        merged = [merge_shards(ds) for ds in zip(*(b.deltas for b in bundles), strict=True)]
        out += unit_emissions(merged, unit.marks, first.closed)
        out += unit.letters
        out.append(Progress(unit.covers))

    def snapshot(self) -> bytes:
        return pickle.dumps(self.waiting, protocol=pickle.HIGHEST_PROTOCOL)


def shards_dir(segment_dir: Path | None) -> Path:
    """Where the shards keep their files (``shard-<i>/``) and exchange final segments
    (``exchange/``): the recovery store's segment directory (shared by every process of the
    cluster), or a temporary directory for a flow without one (one process only)."""
    if segment_dir is not None:
        return segment_dir
    return Path(tempfile.mkdtemp(prefix="billsync-shards-"))


def check_layout(segment_dir: Path, shards: int) -> None:
    """Refuse to start with another shard count than the recovery store was written with
    (its snapshots are of other steps and keys: the flow would start its billing from
    nothing while its input resumes). The count is kept in ``<segment_dir>/layout``; a
    directory written before it (one engine: ``base-*`` files) counts as 1."""
    marker = segment_dir / "layout"
    if marker.exists():
        then = int(marker.read_text().split("=", 1)[1])
    elif any(segment_dir.glob("base-*.seg")):
        then = 1
    else:
        segment_dir.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"shards={shards}\n")
        return
    if then != shards:
        raise ConfigError(
            f"the recovery store in {segment_dir} was written with {then} shard(s), not {shards}",
            field="BILLSYNC_SHARDS",
            fix=_REBUILD,
        )


__all__ = [
    "EXCHANGED",
    "MERGE_KEY",
    "Bundle",
    "MergeLogic",
    "Numbered",
    "SequencerLogic",
    "ShardLogic",
    "check_layout",
    "shard_key",
    "shards_dir",
]
