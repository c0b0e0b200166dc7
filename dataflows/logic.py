"""The billing step's Bytewax logic: the pure engine behind Bytewax's StatefulLogic.

The step applies one :class:`~dataflows.ordering.Unit` at a time (a source transaction, whole:
SPEC 4) and follows each unit's emissions with a :class:`~dataflows.emissions.Progress` naming the
input offsets it covered; it starts with a ``resumed`` Progress of what its snapshot held, so
the writer recognises a replayed prefix, and, when resumed, with a resync unit (the current
target of every open line and milestone, used by the writer only in a replayed prefix:
:mod:`sinks.erp.replay`). The engine's state (and those offsets) is
snapshotted as pickled bytes (immutable, so a snapshot can never see a later epoch's
changes) and restored on resume: with a segment directory as a base and a journal of the
units applied since (:mod:`dataflows.journal`), so an epoch pays for what it applied, not
for the whole state. When the reference mapping files changed
since the snapshot, the logic re-evaluates the lines they affect at start (a timer due at
once), so a finance edit takes effect at the next start even with no new source change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bytewax.operators import StatefulLogic

from billsync.change import Change
from billsync.errors import StackError
from dataflows.billing.engine import BillingEngine, EngineState
from dataflows.billing.mappings import Mappings
from dataflows.billing.target import Delta
from dataflows.emissions import Emission, Progress
from dataflows.journal import MIN_CHANGES, Compaction, Journal, Journaled, replay
from dataflows.ordering import Ordered, TxOrderer, Unit, advance, feed, orderer_factory
from dataflows.progress import PROGRESS
from dataflows.snapshots import SegmentStore, dumps, loads

REEVALUATION = "mappings-changed"
RESYNC = "resync"  # the source position of a resumed step's resync unit


def emissions(
    delta: Delta,
    position: str | None,
    source_ts: datetime | None,
    closed_through: str | None = None,
) -> list[Emission]:
    """The emissions of one delta, a close or reopen first (the writer applies it before
    the line changes it caused); ``closed_through`` is the latest closed period after it."""
    out = []
    if delta.period is not None:
        out.append(Emission(delta.period, position, source_ts, closed_through))
    out.extend(Emission(u, position, source_ts, closed_through) for u in delta.lines)
    out.extend(Emission(u, position, source_ts, closed_through) for u in delta.schedule)
    return out


def unit_emissions(
    deltas: Sequence[Delta],
    marks: Sequence[tuple[str, datetime | None]],
    closed_before: str | None,
) -> list[Emission]:
    """The emissions of one unit's deltas (``BillingEngine.apply_unit``): ``marks``, each
    change's source position and time. One delta (one change, or a transaction's changes
    merged) is at the unit's last change; several (closes and reopens) each at its own
    change, the latest closed period moving with them; none for a unit of no change."""
    if len(deltas) == 1:
        marks = marks[-1:]
    out: list[Emission] = []
    closed = closed_before
    for (position, source_ts), delta in zip(marks, deltas, strict=True):
        if delta.period is not None:
            closed = delta.period.closed_through
        out += emissions(delta, position, source_ts, closed)
    return out


def marks_of(changes: Sequence[Change]) -> tuple[tuple[str, datetime | None], ...]:
    """Each change's source position (as the ledger stores it) and source time."""
    return tuple((str(c.position), c.source_ts) for c in changes)


Output = Emission | Progress | dict[str, Any]  # dict: a dead letter of the unit


class BillingLogic(StatefulLogic[Ordered, Output, bytes]):
    """One engine for the key it runs under (see ARCHITECTURE.md: state and partitioning),
    behind the ordering stage of its sources (:mod:`dataflows.ordering`): the same step, so
    units reach the engine without another Bytewax operator in between."""

    def __init__(
        self,
        mappings: Mappings,
        resume: bytes | None,
        segment_dir: Path | None = None,
        new_orderer: Callable[[str], TxOrderer] | None = None,
        *,
        retain_s: float = 0.0,
        journal_min_changes: int = MIN_CHANGES,
        compaction: Compaction = "inline",
    ) -> None:
        # final items' stubs, the base and the journal are written once to files here
        self._segments = SegmentStore(segment_dir) if segment_dir is not None else None

        def journal(ref: Journaled | None = None) -> Journal | None:
            # without a directory (tests, run --from-file without recovery): whole snapshots
            if self._segments is None:
                return None
            return Journal(self._segments, retain_s=retain_s, min_changes=journal_min_changes,
                           ref=ref, compaction=compaction)  # fmt: skip

        self._new_orderer = new_orderer or orderer_factory(())
        # per input partition ("topic:partition"), the highest offset applied
        self._applied: dict[str, int] = {}
        # per source, what its ordering stage holds back
        self._orderers: dict[str, TxOrderer] = {}
        if resume is None:
            self._engine = BillingEngine(mappings)
            self._pending: list[Output] = [Progress((), resumed=True)]
            self._journal = journal()
            return
        state = loads(resume, self._segments)
        if isinstance(state, tuple):
            state, self._applied, self._orderers = state
        else:  # a snapshot from before units: it names no offsets
            assert isinstance(state, EngineState)
        touched: list[Output] = []  # a journal of other rules: what it touched, again
        if isinstance(state, Journaled):
            if self._segments is None:
                raise StackError("recovery", "the snapshot names a base and journal files: "
                                 "no segment_dir")  # fmt: skip
            rebuilt = replay(state, self._segments)
            self._engine = rebuilt.engine
            self._journal = journal(state)
            if rebuilt.periods and self._journal is not None:  # a close in the journal: a
                self._journal.compact_next()  # base soon (dataflows/journal.py)
            if rebuilt.touched.lines or rebuilt.touched.schedule:
                touched += emissions(rebuilt.touched, REEVALUATION, None,
                                     self._engine.closed_through)  # fmt: skip
                touched.append(Progress(()))
        else:  # a whole engine: this version's inline snapshot, or an earlier version's
            self._engine = BillingEngine.restore(state)
            self._journal = journal()
        # the resumed marker, then the resync unit (sinks/erp/replay.py: used only while the
        # writer gathers a replayed prefix)
        self._pending = [
            Progress(tuple(sorted(self._applied.items())), resumed=True),
            *emissions(self._engine.current(), RESYNC, None, self._engine.closed_through),
            Progress((), resync=True),
            *touched,
        ]
        if self._engine.fingerprint != mappings.fingerprint:
            if self._journal is not None:
                self._journal.compact_next()  # a journal holds units only
            self._pending += emissions(
                self._engine.with_mappings(mappings),
                REEVALUATION,
                None,
                self._engine.closed_through,
            )
            self._pending.append(Progress(()))

    @property
    def engine(self) -> BillingEngine:
        return self._engine

    def apply_unit(self, unit: Unit) -> list[Output]:
        """Apply a unit made elsewhere (tests, benches): what :meth:`on_item` emits for it."""
        out, self._pending = self._pending, []
        self._apply(unit, out)
        return out

    def on_item(self, value: Ordered) -> tuple[Iterable[Output], bool]:
        """A change, transaction marker or dead letter of a source, through its ordering
        stage: the units it releases, applied."""
        out, self._pending = self._pending, []
        for unit in feed(self._orderers, self._new_orderer, value):
            self._apply(unit, out)
        return out, StatefulLogic.RETAIN

    def _apply(self, value: Unit, out: list[Output]) -> None:
        """One unit: its emissions, its dead letters, then its Progress, onto ``out``."""
        PROGRESS.work()  # working, not stalled (ops/run/watchdog.py)
        engine = self._engine
        closed = engine.closed_through
        deltas = engine.apply_unit(value.changes)
        if self._journal is not None:
            self._journal.record(value.changes, deltas)
        out += unit_emissions(deltas, marks_of(value.changes), closed)
        out += value.letters
        advance(self._applied, value.covers)
        out.append(Progress(value.covers))

    def on_notify(self) -> tuple[Iterable[Output], bool]:
        out, self._pending = self._pending, []
        return out, StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Output], bool]:
        return self.on_notify()

    def notify_at(self) -> datetime | None:
        return datetime.now(UTC) if self._pending else None

    def snapshot(self) -> bytes:
        # the orderers are mutable: dumps copies them into the bytes now, at the epoch's end
        journal = self._journal  # with one: the base and journal files, by name
        engine = journal.snapshot(self._engine) if journal is not None else self._engine.snapshot()
        state = (engine, dict(self._applied), self._orderers)
        return dumps(state, self._segments)
