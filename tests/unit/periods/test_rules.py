"""sinks/erp/periods.py: the close and reopen rules (pure) and the calendar on a SQLite ERP."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, select

from sinks.erp import periods as p
from sinks.erp import tables as t
from tests.unit.periods.erp_rows import NOW, entry, fill, line


def st(period: str, status: str = "open", items: int = 1) -> p.PeriodStatus:
    return p.PeriodStatus(period=period, status=status, items=items)


@pytest.mark.parametrize(
    ("period", "known", "expected"),
    [
        ("2026-02", [st("2026-01", "closed"), st("2026-02")], ()),
        ("2026-13", [], ("'2026-13' is not a period",)),
        ("2026-2", [], ("'2026-2' is not a period",)),
        ("2026-01", [st("2026-01", "closed")], ("2026-01 is already closed",)),
        (
            "2026-03",
            [st("2026-01"), st("2026-02", items=0), st("2026-03")],
            ("earlier period with billing items still open: 2026-01",),
        ),
        # an earlier open period without items does not block
        ("2026-03", [st("2026-02", items=0), st("2026-03")], ()),
        (
            "2026-06",
            [st(f"2026-0{m}") for m in range(1, 6)],
            (
                "earlier periods with billing items still open: "
                "2026-01, 2026-02, 2026-03 and 2 more",
            ),
        ),
        # a later open period does not matter; no row and no items: may close
        ("2026-01", [st("2026-02")], ()),
        ("2030-01", [], ()),
    ],
)
def test_close_refusals(
    period: str, known: list[p.PeriodStatus], expected: tuple[str, ...]
) -> None:
    got = p.close_refusals(period, known)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.startswith(e), g


@pytest.mark.parametrize(
    ("period", "reason", "known", "expected"),
    [
        ("2026-02", "late credit note", [st("2026-01", "closed"), st("2026-02", "closed")], ()),
        (
            "2026-01",
            "late credit note",
            [st("2026-01", "closed"), st("2026-02", "closed")],
            ("only the latest closed period can be reopened: that is 2026-02, not 2026-01",),
        ),
        ("2026-02", "  ", [st("2026-02", "closed")], ("a reason is required",)),
        ("2026-03", "x", [st("2026-02", "closed")], ("2026-03 is not closed",)),
        ("2026-02", "", [st("2026-02")], ("a reason is required", "2026-02 is not closed")),
        ("26-02", "x", [], ("'26-02' is not a period",)),
    ],
)
def test_reopen_refusals(
    period: str, reason: str, known: list[p.PeriodStatus], expected: tuple[str, ...]
) -> None:
    got = p.reopen_refusals(period, reason, known)
    assert len(got) == len(expected), got
    for g, e in zip(got, expected, strict=True):
        assert g.startswith(e), g


@pytest.fixture
def erp() -> Engine:
    engine = create_engine("sqlite://")
    fill(
        engine,
        [
            line("1", "2026-01", billed="100.00"),
            line("2", "2026-01", billed="50.00", currency="USD"),
            line("3", "2026-01", "held", billed="0.00", billable="80.00", reason="PROJECT_ON_HOLD"),
            line("4", "2026-02", "partially_held", billed="30.00", billable="40.00", held="10.00"),
            line("5", "2026-02", "exception", billed="0.00", billable="0.00", reason="NO_RATE"),
            line("6", "2026-03", "non_billable", billed="0.00", reason="NOT_BILLABLE"),
        ],
        [entry(1, "2026-01"), entry(2, "2026-01"), entry(9, "2025-12", "-5.00")],
    )
    return engine


def test_list_periods_counts_amounts_and_the_ledger_only_period(erp: Engine) -> None:
    with erp.connect() as conn:
        rows = {s.period: s for s in p.list_periods(conn)}
    assert list(rows) == ["2025-12", "2026-01", "2026-02", "2026-03"]
    jan = rows["2026-01"]
    assert (jan.status, jan.items, jan.final_items, jan.carry_items, jan.ledger_entries) == (
        "open",
        3,
        0,
        1,
        2,
    )
    assert jan.billed == {"EUR": Decimal("100.00"), "USD": Decimal("50.00")}
    # a period with ledger entries only still has billing items (it blocks later closes)
    assert rows["2025-12"].items == 0 and rows["2025-12"].has_items


def test_close_in_order_and_the_plan_of_what_carries_forward(erp: Engine) -> None:
    with erp.begin() as conn:
        with pytest.raises(p.PeriodRefused, match="2025-12"):
            p.close(conn, "2026-01", "ana", force=True, now=NOW)
        p.close(conn, "2025-12", "ana", force=False, now=NOW)
        plan = p.plan_close(conn, "2026-02")
    # 2026-01 is still open: refused whatever --force says
    assert plan.refusals and "2026-01" in plan.refusals[0]
    assert plan.blocked(force=True) == plan.refusals
    assert [c.source_id for c in plan.carry] == ["3", "5"]  # earlier periods' holds too
    assert plan.finalising == 3  # 1, 2 and 4; not 6 of 2026-03
    assert plan.carried_totals() == {
        "EUR": {"billable_amount": Decimal("80.00"), "held_amount": Decimal("0.00")}
    }


def test_carry_forward_refuses_without_force_and_closes_with_it(erp: Engine) -> None:
    with erp.begin() as conn:
        p.close(conn, "2025-12", "ana", force=False, now=NOW)
        with pytest.raises(p.PeriodRefused, match="1 item held or in exception"):
            p.close(conn, "2026-01", "ana", force=False, now=NOW)
        p.close(conn, "2026-01", "bob", force=True, now=NOW)
        row = conn.execute(
            select(t.accounting_periods).where(t.accounting_periods.c.period == "2026-01")
        ).one()
    assert (row.status, row.closed_by, row.closed_at) == ("closed", "bob", NOW)


def test_final_items_are_not_carried_forward(erp: Engine) -> None:
    with erp.begin() as conn:
        conn.execute(
            t.billing_line_state.update()
            .where(t.billing_line_state.c.source_id == "3")
            .values(final=True, final_period="2025-12")
        )
        plan = p.plan_close(conn, "2026-01")
    assert plan.carry == ()


def test_reopen_only_the_latest_keeps_the_close_and_returns_the_final_items(erp: Engine) -> None:
    later = NOW + timedelta(days=3)
    with erp.begin() as conn:
        p.close(conn, "2025-12", "ana", force=False, now=NOW)
        p.close(conn, "2026-01", "ana", force=True, now=NOW)
        conn.execute(
            t.billing_line_state.update()
            .where(t.billing_line_state.c.source_id.in_(["1", "2"]))
            .values(final=True, final_period="2026-01")
        )
        with pytest.raises(p.PeriodRefused, match=r"latest closed period .* 2026-01"):
            p.reopen(conn, "2025-12", "credit note", now=later)
        with pytest.raises(p.PeriodRefused, match="a reason is required"):
            p.reopen(conn, "2026-01", " ", now=later)
        done = p.reopen(conn, "2026-01", " credit note ", now=later)
        row = conn.execute(
            select(t.accounting_periods).where(t.accounting_periods.c.period == "2026-01")
        ).one()
        assert p.still_final(conn, "2026-01") == 2  # until the flow applies the reopen
        # closing again keeps the last reopen next to the new close
        p.close(conn, "2026-01", "bob", force=True, now=later + timedelta(hours=1))
        again = conn.execute(
            select(t.accounting_periods).where(t.accounting_periods.c.period == "2026-01")
        ).one()
    assert done.final_items == (("timesheet", "2026-01"),)
    assert (row.status, row.reopen_reason, row.reopened_at, row.closed_by) == (
        "open",
        "credit note",
        later,
        "ana",
    )
    assert (again.status, again.closed_by, again.reopen_reason) == ("closed", "bob", "credit note")
