"""The billing step's Bytewax logic: the pure engine behind Bytewax's StatefulLogic.

The engine's state is snapshotted as pickled bytes (immutable, so a snapshot can never see
a later epoch's changes) and restored on resume. When the reference mapping files changed
since the snapshot, the logic re-evaluates the lines they affect at start (a timer due at
once), so a finance edit takes effect at the next start even with no new source change.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from bytewax.operators import StatefulLogic

from dataflows.billing.engine import BillingEngine, EngineState
from dataflows.billing.mappings import Mappings
from dataflows.billing.target import Delta
from dataflows.cdc.change import Change
from dataflows.snapshots import SegmentStore, dumps, loads
from sinks.erp.writer import Emission

REEVALUATION = "mappings-changed"


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


class BillingLogic(StatefulLogic[Change, Emission, bytes]):
    """One engine for the key it runs under (see ARCHITECTURE.md: state and partitioning)."""

    def __init__(
        self, mappings: Mappings, resume: bytes | None, segment_dir: Path | None = None
    ) -> None:
        self._pending: list[Emission] = []
        # final items' stubs are written once to files here, not into every snapshot
        self._segments = SegmentStore(segment_dir) if segment_dir is not None else None
        if resume is None:
            self._engine = BillingEngine(mappings)
            return
        state: EngineState = loads(resume, self._segments)
        self._engine = BillingEngine.restore(state)
        if self._engine.fingerprint != mappings.fingerprint:
            self._pending = emissions(
                self._engine.with_mappings(mappings),
                REEVALUATION,
                None,
                self._engine.closed_through,
            )

    @property
    def engine(self) -> BillingEngine:
        return self._engine

    def on_item(self, value: Change) -> tuple[Iterable[Emission], bool]:
        out, self._pending = self._pending, []
        delta = self._engine.apply(value)
        closed = self._engine.closed_through
        out.extend(emissions(delta, str(value.position), value.source_ts, closed))
        return out, StatefulLogic.RETAIN

    def on_notify(self) -> tuple[Iterable[Emission], bool]:
        out, self._pending = self._pending, []
        return out, StatefulLogic.RETAIN

    def on_eof(self) -> tuple[Iterable[Emission], bool]:
        return self.on_notify()

    def notify_at(self) -> datetime | None:
        return datetime.now(UTC) if self._pending else None

    def snapshot(self) -> bytes:
        return dumps(self._engine.snapshot(), self._segments)
