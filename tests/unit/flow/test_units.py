"""The billing step applies a source transaction whole (SPEC 4), and reports its progress.

A PSA transaction that approves time and puts its project on hold must never bill, not even
for a moment: applied change by change in the transaction's own order (approval first), the
line would be billed and then held, and the ERP would post a charge and its reversal.
"""

from __future__ import annotations

from dataclasses import replace

from billsync.change import Change, Op, SourcePosition, TxRef
from billsync.model import Row
from dataflows.billing.target import LineUpdate, State
from dataflows.emissions import Emission, Progress
from dataflows.logic import BillingLogic
from dataflows.ordering import Unit
from tests.unit.billing.worlds import MAPPINGS, base_rows

_lsn = [0]


def _change(row: Row, tx: str | None = None, order: int = 1) -> Change:
    _lsn[0] += 1
    topic = (
        f"psa.public.{row.TABLE}"
        if row.TABLE in ("projects", "timesheets", "employees")
        else f"crm.crm.{row.TABLE}"
    )
    pos = (
        SourcePosition("psa", lsn=_lsn[0], tx_id=1)
        if topic.startswith("psa")
        else SourcePosition("crm", file="mysql-bin.000001", pos=_lsn[0])
    )
    return Change(row.TABLE, Op.UPDATE, row.key, None, row, pos, topic=topic, partition=0,
                  offset=_lsn[0], tx=TxRef(tx, order) if tx else None)  # fmt: skip


def _unit(*changes: Change, tx: str | None = None) -> Unit:
    covers: dict[str, int] = {}
    for c in changes:
        covers[f"{c.topic}:0"] = max(covers.get(f"{c.topic}:0", -1), c.offset or 0)
    return Unit(changes[0].position.source, changes, tx, tuple(sorted(covers.items())))


def _started() -> tuple[BillingLogic, dict[str, Row]]:
    """A logic holding the base world with timesheet 1 submitted (not approved yet)."""
    rows = base_rows()
    rows["T1"] = replace(rows["T1"], status="submitted")  # type: ignore[type-var]  # a Timesheet
    logic = BillingLogic(MAPPINGS, None)
    for row in rows.values():
        logic.apply_unit(_unit(_change(row)))
    return logic, rows


def _states(out: list[Emission | Progress]) -> list[State | None]:
    return [
        o.update.new.state if o.update.new is not None else None
        for o in out
        if isinstance(o, Emission) and isinstance(o.update, LineUpdate)
    ]


def test_hold_and_approval_in_one_transaction_never_bill() -> None:
    logic, rows = _started()
    approve = _change(replace(rows["T1"], status="approved"), tx="7:70", order=1)  # type: ignore[type-var]  # a Timesheet
    hold = _change(replace(rows["P1"], status="on_hold"), tx="7:70", order=2)  # type: ignore[type-var]  # a Project
    out = logic.apply_unit(_unit(approve, hold, tx="7:70"))
    assert _states(list(out)) == [State.HELD]  # one emission: held, never billed


def test_the_same_changes_as_two_transactions_do_bill_then_hold() -> None:
    """The control: the difference above comes from the unit, not from the rules."""
    logic, rows = _started()
    approve = _change(replace(rows["T1"], status="approved"))  # type: ignore[type-var]  # a Timesheet
    hold = _change(replace(rows["P1"], status="on_hold"))  # type: ignore[type-var]  # a Project
    first = logic.apply_unit(_unit(approve))
    second = logic.apply_unit(_unit(hold))
    assert _states(list(first)) == [State.BILLED]
    assert _states(list(second)) == [State.HELD]


def test_progress_follows_each_unit_and_a_resumed_logic_says_what_it_held() -> None:
    logic, rows = _started()
    change = _change(replace(rows["E1"], name="Eva"))  # type: ignore[type-var]  # an Employee
    out = logic.apply_unit(_unit(change))
    assert out[-1] == Progress(((f"{change.topic}:0", change.offset),))
    resumed = BillingLogic(MAPPINGS, logic.snapshot())
    first = next(iter(resumed.on_notify()[0]))
    assert isinstance(first, Progress) and first.resumed
    assert dict(first.covers)[f"{change.topic}:0"] == change.offset
    fresh = BillingLogic(MAPPINGS, None)
    assert list(fresh.on_notify()[0]) == [Progress((), resumed=True)]
