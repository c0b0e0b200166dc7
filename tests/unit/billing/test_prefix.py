"""Incremental allocation: :class:`Prefix` against a full recompute, and engine edge cases.

A :class:`Prefix` recomputes from the first changed order position and stops when the running
total is what it was; these tests compare it with recomputing every member, on scripted edge
cases and on random operation sequences, then drive the engine through the same edge cases
(insert at the front of a capped group, delete of the first member, cap raised and lowered,
retainer month boundary, ties) and compare every step with the batch oracle.
"""

from __future__ import annotations

import pickle
import random
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from billsync.model import Contract, Row, Timesheet
from dataflows.billing.allocation import Prefix
from dataflows.billing.engine import BillingEngine
from dataflows.billing.rules import OrderKey, order_key
from dataflows.billing.target import LineKey, SourceType

from .changes import delete, upsert
from .test_engine import check, loaded
from .worlds import D, at, base_rows


def key(n: int, tid: int | None = None) -> OrderKey:
    """Order key of timesheet ``tid`` approved at minute ``n`` (ties when n repeats)."""
    moment = datetime(2024, 3, 1, tzinfo=UTC).replace(hour=n // 60 % 24, minute=n % 60)
    return order_key(moment, SourceType.TIMESHEET, tid if tid is not None else n, "")


def item(tid: int) -> LineKey:
    return ("timesheet", str(tid))


def full(
    limit: Decimal, members: dict[LineKey, tuple[OrderKey, Decimal]]
) -> dict[LineKey, Decimal]:
    """Every member's take, recomputed from scratch (the definition)."""
    used, out = Decimal(0), {}
    for k, (_order, x) in sorted(members.items(), key=lambda kv: kv[1][0]):
        take = min(x, max(limit - used, Decimal(0)))
        out[k] = take
        used += take
    return out


def takes(p: Prefix) -> dict[LineKey, Decimal]:
    return dict(zip(p.items, p.takes, strict=True))


class Model:
    """A Prefix and the member table it must agree with; checks the reported changes."""

    def __init__(self, limit: str) -> None:
        self.p = Prefix(D(limit))
        self.members: dict[LineKey, tuple[OrderKey, Decimal]] = {}

    def apply(
        self,
        removes: list[LineKey] = (),  # type: ignore[assignment]  # a default never mutated
        inserts: list[tuple[LineKey, OrderKey, str]] = (),  # type: ignore[assignment]  # same
    ) -> dict[LineKey, Decimal]:
        before = full(self.p.limit, self.members)
        gone = [(self.members.pop(k)[0], k) for k in removes]
        entries = []
        for k, order, x in inserts:
            self.members[k] = (order, D(x))
            entries.append((order, k, D(x)))
        reported = self.p.update(gone, entries)
        after = full(self.p.limit, self.members)
        assert takes(self.p) == after
        assert list(self.p.keys) == sorted(self.p.keys)
        used = Decimal(0)
        for total, take in zip(self.p.after, self.p.takes, strict=True):
            used += take
            assert total == used
        # every inserted member and every member whose take changed is reported, nothing else
        fresh = {k for k, _o, _x in inserts}
        want = {k: t for k, t in after.items() if k in fresh or before.get(k) != t}
        assert reported == want
        return reported


def test_insert_at_front_of_a_capped_group_shifts_until_saturation() -> None:
    m = Model("10")
    m.apply(inserts=[(item(i), key(i), "3") for i in range(1, 8)])  # 3 3 3 1 0 0 0
    got = m.apply(inserts=[(item(0), key(0), "4")])  # 4 3 3 0 0 0 0 0
    assert got == {item(0): D(4), item(3): D(0), item(4): D(0)}


def test_delete_of_the_first_member_releases_cap() -> None:
    m = Model("10")
    m.apply(inserts=[(item(i), key(i), "4") for i in range(1, 6)])  # 4 4 2 0 0
    got = m.apply(removes=[item(1)])  # 4 4 2 0
    assert got == {item(3): D(4), item(4): D(2)}


def test_unsaturated_insert_reports_only_the_new_member() -> None:
    m = Model("1000")
    m.apply(inserts=[(item(i), key(i), "5") for i in range(1, 50)])
    assert m.apply(inserts=[(item(0), key(0), "5")]) == {item(0): D(5)}


def test_saturated_tail_stops_early() -> None:
    m = Model("6")
    m.apply(inserts=[(item(i), key(i), "2") for i in range(1, 200)])
    assert m.apply(inserts=[(item(500), key(500), "2")]) == {item(500): D(0)}
    assert m.apply(removes=[item(150)]) == {}


def test_amount_changed_in_place_and_moved_in_order() -> None:
    m = Model("10")
    m.apply(inserts=[(item(i), key(i), "4") for i in range(1, 5)])  # 4 4 2 0
    assert m.apply(removes=[item(2)], inserts=[(item(2), key(2), "1")]) == {
        item(2): D(1), item(3): D(4), item(4): D(1),
    }  # fmt: skip
    # item 4 moves to the front (its approval was back-dated)
    m.apply(removes=[item(4)], inserts=[(item(4), key(0, 4), "4")])


def test_ties_order_on_timesheet_id() -> None:
    m = Model("5")
    m.apply(inserts=[(item(10), key(7, 10), "4"), (item(9), key(7, 9), "4")])
    assert takes(m.p) == {item(9): D(4), item(10): D(1)}


def test_zero_and_negative_limits_and_amounts() -> None:
    for limit in ("0", "-5"):
        m = Model(limit)
        m.apply(inserts=[(item(1), key(1), "3"), (item(2), key(2), "0")])
        assert set(takes(m.p).values()) == {D(0)}
    m = Model("5")  # a negative amount (a negative rate) gives room back
    m.apply(inserts=[(item(i), key(i), "3") for i in range(1, 5)])
    m.apply(inserts=[(item(0), key(0), "-4")])
    m.apply(removes=[item(2)])


def test_remove_everything_then_refill() -> None:
    m = Model("7")
    m.apply(inserts=[(item(i), key(i), "2") for i in range(5)])
    m.apply(removes=[item(i) for i in range(5)])
    assert len(m.p) == 0
    m.apply(inserts=[(item(3), key(3), "9")])


def test_fill_equals_updates_and_pickles() -> None:
    m = Model("10")
    m.apply(inserts=[(item(i), key(i), "3") for i in (5, 1, 3)])
    other = Prefix(D("10"))
    assert other.fill([(key(i), item(i), D(3)) for i in (3, 5, 1)]) == takes(m.p)
    clone = pickle.loads(pickle.dumps(m.p))  # noqa: S301  # our own bytes
    assert (clone.keys, clone.items, clone.xs, clone.takes, clone.after, clone.limit) == (
        m.p.keys, m.p.items, m.p.xs, m.p.takes, m.p.after, m.p.limit,
    )  # fmt: skip


@pytest.mark.parametrize("seed", range(40))
def test_random_operations_equal_full_recompute(seed: int) -> None:
    rnd = random.Random(seed)
    m = Model(rnd.choice(["0", "4", "10", "25", "1000"]))
    for _ in range(60):
        present = list(m.members)
        removes = rnd.sample(present, k=min(len(present), rnd.choice([0, 0, 1, 2])))
        inserts: list[tuple[LineKey, OrderKey, str]] = []
        for _ in range(rnd.choice([0, 1, 1, 2, 3])):
            tid = rnd.randrange(40)
            k = item(tid)
            if k in removes or (k in m.members and k not in removes):
                continue
            if any(k == i[0] for i in inserts):
                continue
            x = rnd.choice(["0", "1", "2.50", "3", "7.75", "-1"])
            inserts.append((k, key(rnd.randrange(30), tid), x))  # many ties on the minute
        m.apply(removes=removes, inserts=inserts)


# --- the engine on the same edge cases, checked against batch after every change ----------


def c1(**changes: Any) -> Contract:
    contract = base_rows()["C1"]
    assert isinstance(contract, Contract)
    return replace(contract, **changes)


def capped(cap: str, period: str = "contract") -> dict[str, Row]:
    rows = base_rows()
    rows["C1"] = c1(cap_amount=D(cap), cap_period=period)
    return rows


def line(tid: int, hours: str, approved: int | None, day: int = 15, month: int = 3) -> Timesheet:
    return Timesheet(
        tid, "E1", "P1", date(2024, month, day), D(hours), True, "approved",
        at(approved) if approved is not None else None,
    )  # fmt: skip


def test_engine_front_insert_first_delete_and_cap_moves() -> None:
    rows = capped("3000")
    for tid in range(2, 6):
        rows[f"T{tid}"] = line(tid, "7.5", 16 + tid)  # 1125 each: 1, 2 billed, 3 partial
    engine = loaded(rows)
    check(engine)
    engine.apply(upsert(line(9, "4", 10)))  # before everyone: insert at the front
    check(engine)
    engine.apply(delete("timesheets", "9"))  # the first member goes
    check(engine)
    engine.apply(delete("timesheets", "1"))
    check(engine)
    contract = rows["C1"]
    assert isinstance(contract, Contract)
    for cap in ("10000", "500", "0", None, "2250"):
        contract = replace(contract, cap_amount=D(cap) if cap is not None else None)
        engine.apply(upsert(contract))
        check(engine)
    engine.apply(upsert(replace(contract, cap_period="month")))
    check(engine)


def test_engine_retainer_month_boundary_and_ties() -> None:
    rows = base_rows()
    rows["C1"] = c1(
        contract_type="retainer", retainer_hours_monthly=D("10"), cap_amount=D("1500"),
        cap_period="contract",
    )  # fmt: skip
    rows["T2"] = line(2, "6", 17, day=31)  # March
    rows["T3"] = line(3, "6", 17, day=1, month=4)  # April: its own allowance, same cap
    engine = loaded(rows)
    check(engine)
    engine.apply(upsert(line(3, "6", 17, day=31)))  # moves into March's allowance
    check(engine)
    engine.apply(upsert(line(4, "6", 17)))  # ties with 2 and 3 on approved_at: ids decide
    check(engine)
    engine.apply(upsert(line(2, "8", None, day=31)))  # NULL approved_at: to the end
    check(engine)
    engine.apply(upsert(line(1, "1", 17)))  # first member shrinks: the others get coverage
    check(engine)
    blob = pickle.dumps(engine.snapshot())
    engine = BillingEngine.restore(pickle.loads(blob))  # noqa: S301  # our own bytes
    engine.apply(delete("timesheets", "4"))
    check(engine)
    contract = rows["C1"]
    assert isinstance(contract, Contract)
    engine.apply(upsert(replace(contract, retainer_hours_monthly=D("3"))))
    check(engine)
    engine.apply(upsert(replace(contract, contract_type="time_and_materials")))
    check(engine)


def test_legacy_snapshot_without_books_upgrades_silently() -> None:
    rows = capped("2000")
    rows["T2"] = line(2, "7.5", 17)
    engine = loaded(rows)
    state = engine.snapshot()
    del state.__dict__["books"]  # what an engine before incremental allocation pickled
    restored = BillingEngine.restore(pickle.loads(pickle.dumps(state)))  # noqa: S301  # ours
    assert restored.lines == engine.lines and restored.state.books
    restored.apply(upsert(line(9, "1", 10)))
    check(restored)


@pytest.mark.parametrize("seed", range(20))
def test_relimit_equals_full_recompute(seed: int) -> None:
    rnd = random.Random(seed)
    m = Model(rnd.choice(["0", "4", "10", "25"]))
    m.apply(inserts=[(item(i), key(rnd.randrange(20), i), rnd.choice(["1", "3", "0", "-2"]))
                     for i in range(rnd.randrange(1, 15))])  # fmt: skip
    for _ in range(5):
        before = takes(m.p)
        limit = D(rnd.choice(["0", "2", "5", "9", "30", "-1"]))
        reported = m.p.relimit(limit)
        after = full(limit, m.members)
        assert takes(m.p) == after
        assert reported == {k: t for k, t in after.items() if before[k] != t}
        m.apply(
            inserts=[
                (item(100 + len(m.members)), key(rnd.randrange(20), 100 + len(m.members)), "2")
            ]
        )
