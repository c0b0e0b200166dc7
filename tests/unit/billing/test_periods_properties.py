"""Property tests with closed periods (SPEC 2b): incremental = batch, frozen finals, net ledger.

The random change histories of ``test_properties`` are interleaved with random closes and
reopens (always valid ones: periods close in order, only the latest closed period reopens).
A small model of the ERP applies every emission as the writer does: line states, the
record of which items are final (marked by the same predicate at a close, cleared at a
reopen or when an item is released), and the ledger. After a reopen the current rows of
the period's final items are delivered again, as the re-snapshot that
``billsync periods reopen`` asks Debezium for does.

Checked after every step (while no reopened item still waits for its row): the engine's
open lines equal ``compute_targets`` given the ERP's record of final items; a final item's
ERP line never changes but through its own row; and at the end every item's ledger nets to
its ERP line (final or open).
"""

from __future__ import annotations

import pickle
import random
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billsync.change import Change, Op
from billsync.model import ROW_TYPES, AccountingPeriod, Milestone, Row, Timesheet
from dataflows.billing.batch import World, compute_targets
from dataflows.billing.engine import BillingEngine
from dataflows.billing.ledger import Posted, postings
from dataflows.billing.money import month_of, utc_date
from dataflows.billing.periods import CLOSE, becomes_final
from dataflows.billing.target import Delta, LineKey, LineTarget

from .changes import upsert
from .test_properties import MAPPINGS, Event, change_of, histories

PERIODS = ["2024-02", "2024-03", "2024-04"]


@dataclass
class Erp:
    """What the ERP writer keeps, reduced to what SPEC 2b checks."""

    lines: dict[LineKey, LineTarget]
    final: dict[LineKey, str]  # item -> final_period
    posted: dict[LineKey, Posted]

    def apply(self, delta: Delta) -> None:
        if delta.period is not None:
            ev = delta.period
            if ev.kind == CLOSE:
                for key, target in self.lines.items():
                    if key not in self.final and becomes_final(target, ev.period):
                        self.final[key] = ev.period
            else:
                for key in [k for k, p in self.final.items() if p == ev.period]:
                    del self.final[key]
        for u in delta.lines:
            if u.released:
                self.final.pop(u.key, None)
            else:
                assert u.key not in self.final, f"final item {u.key} changed by another row"
                assert self.lines.get(u.key) == u.old, f"{u.key}: does not continue"
                assert u.old != u.new
            have = self.posted.get(u.key, Posted())
            for entry in postings(u.key[0], u.key[1], have, u.new):
                have = have.plus(entry)
            self.posted[u.key] = have
            if u.new is None:
                self.lines.pop(u.key, None)
            else:
                self.lines[u.key] = u.new


def period_plan(rnd: random.Random) -> list[tuple[str, str]]:
    """A valid sequence of closes and reopens."""
    plan: list[tuple[str, str]] = []
    closed: list[str] = []
    for _ in range(rnd.choice([1, 2, 3, 4, 5])):
        if closed and rnd.random() < 0.35:
            plan.append(("open", closed.pop()))
        elif len(closed) < len(PERIODS):
            closed.append(PERIODS[len(closed)])
            plan.append(("closed", closed[-1]))
    return plan


def own_period_rows(tables: dict[str, dict[str, Row]], keys: list[LineKey]) -> list[Change]:
    """The current rows of ``keys``, as a re-snapshot delivers them (op ``r``)."""
    out = []
    for source_type, key in keys:
        table = "timesheets" if source_type == "timesheet" else "milestones"
        row = tables[table].get(key)
        if row is not None:
            out.append(upsert(row, Op.READ))
    return out


def item_period(row: Row) -> str | None:
    if isinstance(row, Timesheet):
        return month_of(row.work_date)
    assert isinstance(row, Milestone)
    return month_of(utc_date(row.accepted_at))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), snapshot_at=st.floats(0, 1))
def test_closes_and_reopens_keep_incremental_equal_to_batch(seed: int, snapshot_at: float) -> None:
    rnd = random.Random(seed ^ 0x2B)
    events: list[Event | tuple[str, str]] = list(histories(seed))
    for op in period_plan(rnd):  # ordered among themselves, anywhere in the stream
        events.insert(rnd.randint(0, len(events)), op)
    # keep the plan's order: re-sort the period ops among their own positions
    slots = [i for i, e in enumerate(events) if isinstance(e, tuple)]
    ops = [e for e in events if isinstance(e, tuple)]
    ordered = period_plan(random.Random(seed ^ 0x2B))
    assert sorted(ops) == sorted(ordered)
    for i, op in zip(slots, ordered, strict=True):
        events[i] = op

    engine = BillingEngine(MAPPINGS)
    erp = Erp({}, {}, {})
    tables: dict[str, dict[str, Row]] = {t: {} for t in ROW_TYPES}
    snap = int(snapshot_at * len(events))
    queue: list[Change | Event | tuple[str, str]] = list(events)
    step = 0
    while queue:
        item = queue.pop(0)
        step += 1
        if step == snap:
            blob = pickle.dumps(engine.snapshot())
            engine = BillingEngine.restore(pickle.loads(blob))  # noqa: S301  # our own bytes
        if isinstance(item, tuple):
            status, period = item
            row = AccountingPeriod(period, status)
            tables["accounting_periods"][period] = row
            reopened = [k for k, p in erp.final.items() if p == period] if status == "open" else []
            erp.apply(engine.apply(upsert(row)))
            # the re-snapshot of a reopened period's final items, right after the reopen
            queue[0:0] = own_period_rows(tables, reopened)
            continue
        change = item if isinstance(item, Change) else change_of(item)
        erp.apply(engine.apply(change))
        if isinstance(item, Event):
            if item.row is None:
                tables[item.table].pop(item.key, None)
            else:
                tables[item.table][item.key] = item.row
        if engine.finals.waiting():
            continue  # a reopened period's re-snapshot is still under way
        frozen = {k: erp.lines[k] for k in erp.final}
        lines, _schedule = compute_targets(World(tables), MAPPINGS, frozen)
        assert engine.lines == lines, f"after step {step}: {item}"
        assert set(engine.lines).isdisjoint(erp.final)

    # every final item is what the engine keeps a stub of, and the ledger nets everywhere
    assert {s.key for s in _stubs(engine)} == set(erp.final)
    for key in set(erp.posted) | set(erp.lines):
        target = erp.lines.get(key)
        want = (target.billed_amount, target.tax_amount) if target else (0, 0)
        got = erp.posted.get(key, Posted())
        assert (got.amount, got.tax_amount) == want, key
    for key, target in engine.lines.items():
        assert erp.lines[key] == target


def _stubs(engine: BillingEngine) -> list[object]:
    finals = engine.finals
    return [s for seg in finals.segments for s in seg if s.key not in finals.gone.get(seg.seq, ())]
