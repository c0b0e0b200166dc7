"""Shards emit what one engine emits (issue 13; ``dataflows/billing/shards.py``).

The random change histories of ``test_properties`` — projects moving between contracts and
deleted, items moving between projects, every table changing — with closes and reopens (and
the reopened period's re-snapshot), stale re-deliveries of earlier changes with their
original positions, and changes cut into random transactions, are applied to one engine
and to 2, 3 and 4 shards (:class:`~dataflows.billing.sharded.ShardedEngine`). After every
transaction the shards' merged deltas must equal the one engine's, update for update; the
ERP model of ``test_periods_properties`` applies them and checks that every update
continues what the ERP holds; at a random point every shard is pickled and restored. At
the end the shards together hold the one engine's lines, schedule and final items, each
open line in exactly one shard, and every shard holds every final item's stub.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billsync.change import Change, Op
from billsync.model import ROW_TYPES, AccountingPeriod, Row
from dataflows.billing.engine import BillingEngine
from dataflows.billing.sharded import ShardedEngine
from dataflows.billing.shards import merge_shards, shard_of
from dataflows.billing.target import Delta, LineKey, LineUpdate

from .changes import upsert
from .test_periods_properties import Erp, own_period_rows, period_plan
from .test_properties import MAPPINGS, change_of, histories
from .worlds import base_rows, targets

Unit = list[Change]


def _stream(seed: int) -> list[Unit | tuple[str, str]]:
    """Transactions of the history with stale copies, and the period plan in its order."""
    rnd = random.Random(seed ^ 0x5A4D)
    changes: list[Change] = [change_of(e) for e in histories(seed)]  # positions in order
    stream: list[Change] = list(changes)
    for _ in range(len(changes) // 4):  # a stale copy somewhere after its original
        i = rnd.randrange(len(changes))
        at = stream.index(changes[i])
        stream.insert(rnd.randint(at + 1, len(stream)), changes[i])
    units: list[Unit | tuple[str, str]] = []
    i = 0
    while i < len(stream):
        n = rnd.choice([1, 1, 1, 2, 3])
        units.append(stream[i : i + n])
        i += n
    plan = period_plan(random.Random(seed ^ 0x2B))  # valid closes and reopens, in order
    slots = sorted(rnd.randint(0, len(units)) for _ in plan)
    for offset, (slot, op) in enumerate(zip(slots, plan, strict=True)):
        units.insert(slot + offset, op)
    return units


def _plain(deltas: list[Delta]) -> list[tuple[object, ...]]:
    """What a delta tells the writer (its notes are for humans)."""
    return [(d.lines, d.schedule, d.period) for d in deltas]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**32),
    shards=st.sampled_from([2, 3, 4]),
    restore_at=st.floats(0, 1),
)
def test_shards_emit_what_one_engine_emits(seed: int, shards: int, restore_at: float) -> None:
    units = _stream(seed)
    one = BillingEngine(MAPPINGS)
    many = ShardedEngine(MAPPINGS, shards)
    erp = Erp({}, {}, {})
    tables: dict[str, dict[str, Row]] = {t: {} for t in ROW_TYPES}
    restore = int(restore_at * len(units))
    queue = list(units)
    step = 0
    while queue:
        unit = queue.pop(0)
        step += 1
        if step == restore:
            many.engines = [
                BillingEngine.restore(pickle.loads(pickle.dumps(e.snapshot())))  # noqa: S301  # our own bytes
                for e in many.engines
            ]
        resnapshot: list[Change] = []
        if isinstance(unit, tuple):
            status, period = unit
            row = AccountingPeriod(period, status)
            tables["accounting_periods"][period] = row
            if status == "open":  # the re-snapshot of its final items, right after it
                keys = [k for k, p in erp.final.items() if p == period]
                resnapshot = own_period_rows(tables, keys)
            changes: Unit = [upsert(row)]
        else:
            changes = unit
        want = one.apply_unit(changes)
        got = many.apply_unit(changes)
        assert _plain(got) == _plain(want), f"step {step}: {changes}"
        for delta in got:
            erp.apply(delta)
        for change in changes:
            if change.table != "accounting_periods":
                newest = tables[change.table].get(change.key)
                if change.after is None:
                    tables[change.table].pop(change.key, None)
                elif newest is None or change.after is not newest:
                    tables[change.table][change.key] = change.after
        queue[0:0] = [[c] for c in resnapshot]

    assert many.lines == one.lines
    assert many.schedule == one.schedule
    owners = [k for e in many.engines for k in e.lines]
    assert len(owners) == len(set(owners)), "an open line held by two shards"
    want_final = _final_keys(one)
    for e in many.engines:
        assert _final_keys(e) == want_final
        assert e.finals.limbo == one.finals.limbo


def _final_keys(engine: BillingEngine) -> set[LineKey]:
    """The items ``engine`` keeps a stub of (final, or waiting in a reopened period)."""
    finals = engine.finals
    return {
        s.key for seg in finals.segments for s in seg if s.key not in finals.gone.get(seg.seq, ())
    }


def test_shard_of_is_stable_and_spreads_the_test_contracts() -> None:
    assert shard_of(None, 4) == 0
    assert shard_of("C1", 1) == 0
    assert [shard_of(c, 3) for c in ("C1", "C2", "C3")] == [2, 1, 0]  # must never change
    assert len({shard_of(f"CON-{i:05d}", 4) for i in range(40)}) == 4


def test_a_project_moving_to_another_shards_contract_moves_its_line() -> None:
    rows = base_rows()  # T1 bills on C1 through P1
    c2 = next(c for c in ("C2", "C3", "C4", "C5") if shard_of(c, 2) != shard_of("C1", 2))
    rows[c2] = _contract_as(rows, c2)
    many = ShardedEngine(MAPPINGS, 2)
    for row in rows.values():
        many.apply(upsert(row, Op.READ))
    before = shard_of("C1", 2)
    assert ("timesheet", "1") in many.engines[before].lines
    moved = _project_to(rows, c2)
    delta = many.apply(upsert(moved))
    after = shard_of(c2, 2)
    assert ("timesheet", "1") not in many.engines[before].lines
    assert many.engines[after].lines[("timesheet", "1")].contract_id == c2
    (update,) = delta.lines
    assert update.old is not None and update.old.contract_id == "C1"
    assert update.new is not None and update.new.contract_id == c2
    rows["P1"] = moved
    assert many.lines == targets(rows)[0]


def _contract_as(rows: dict[str, Row], contract_id: str) -> Row:
    return replace(rows["C1"], contract_id=contract_id)  # type: ignore[arg-type]  # a Contract


def _project_to(rows: dict[str, Row], contract_id: str) -> Row:
    return replace(rows["P1"], contract_id=contract_id)  # type: ignore[arg-type]  # a Project


@pytest.mark.parametrize("held", [0, 1, 2])
def test_merge_refuses_a_line_held_by_two_shards(held: int) -> None:
    t = targets(base_rows())[0][("timesheet", "1")]
    ups = [Delta(lines=(LineUpdate(("timesheet", "1"), t, None),)) for _ in range(held)]
    if held < 2:
        assert merge_shards([*ups, Delta()]).lines == tuple(u.lines[0] for u in ups)
    else:
        with pytest.raises(AssertionError, match="2 shards held it"):
            merge_shards(ups)
