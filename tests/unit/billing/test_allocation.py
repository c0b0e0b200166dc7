"""Retainer, both cap periods, partial lines, order (null approved_at, ties), milestones."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from billsync.model import Milestone, Row, Timesheet
from dataflows.billing.target import State

from .worlds import D, at, base_rows, edit, milestone_rows, targets

Rows = dict[str, Row]


def with_lines(rows: Rows, *lines: Timesheet) -> Rows:
    out = dict(rows)
    for ts in lines:
        out[f"T{ts.timesheet_id}"] = ts
    return out


def ts(tid: int, hours: str, approved: int | None, day: int = 15, month: int = 3) -> Timesheet:
    return Timesheet(
        tid, "E1", "P1", date(2024, month, day), D(hours), True, "approved",
        at(approved, month=month) if approved is not None else None,
    )  # fmt: skip


def summary(rows: Rows) -> dict[str, tuple[str, str | None, Decimal, Decimal, Decimal, Decimal]]:
    lines, _ = targets(rows)
    return {
        key[1]: (t.state.value, t.reason, t.billable_amount, t.billed_amount, t.held_amount,
                 t.covered_hours)
        for key, t in lines.items()
    }  # fmt: skip


def retainer(rows: Rows, hours: str | None) -> Rows:
    return edit(
        rows, "C1", contract_type="retainer",
        retainer_hours_monthly=D(hours) if hours is not None else None,
    )  # fmt: skip


def test_retainer_covers_first_hours_of_the_month_in_approval_order() -> None:
    rows = with_lines(retainer(base_rows(), "10"), ts(2, "5", 17), ts(3, "4", 1, month=4))
    assert summary(rows) == {
        "1": ("non_billable", "COVERED_BY_RETAINER", 0, 0, 0, D("7.50")),
        "2": ("billed", None, D("375.00"), D("375.00"), 0, D("2.50")),
        "3": ("non_billable", "COVERED_BY_RETAINER", 0, 0, 0, D("4.00")),  # April: new allowance
    }


def test_late_line_takes_its_place_in_retainer_order() -> None:
    rows = with_lines(retainer(base_rows(), "10"), ts(2, "5", 17), ts(9, "4", 15))
    assert summary(rows) == {
        "9": ("non_billable", "COVERED_BY_RETAINER", 0, 0, 0, D("4.00")),
        "1": ("billed", None, D("225.00"), D("225.00"), 0, D("6.00")),
        "2": ("billed", None, D("750.00"), D("750.00"), 0, 0),
    }


def test_null_retainer_hours_cover_nothing() -> None:
    assert summary(retainer(base_rows(), None))["1"] == (
        "billed", None, D("1125.00"), D("1125.00"), 0, 0,
    )  # fmt: skip


def test_retainer_is_ignored_on_other_contract_types() -> None:
    rows = edit(base_rows(), "C1", retainer_hours_monthly=D("100"))
    assert summary(rows)["1"][0] == "billed"


def test_retainer_uses_work_month_not_approval_month() -> None:
    late = Timesheet(2, "E1", "P1", date(2024, 2, 28), D("5"), True, "approved", at(2))
    rows = with_lines(retainer(base_rows(), "6"), late)
    got = summary(rows)
    assert got["2"][5] == D("5.00") and got["1"][5] == D("6.00")


def test_contract_cap_splits_a_line_and_holds_the_rest() -> None:
    rows = with_lines(
        edit(base_rows(), "C1", cap_amount=D("1500.00"), cap_period="contract"),
        ts(2, "5", 17),
        ts(3, "7.5", 18, month=4),
    )
    lines, _ = targets(rows)
    assert summary(rows) == {
        "1": ("billed", None, D("1125.00"), D("1125.00"), 0, 0),
        "2": ("partially_held", "BILLING_CAP_EXCEEDED", D("750.00"), D("375.00"), D("375.00"), 0),
        "3": ("held", "BILLING_CAP_EXCEEDED", D("1125.00"), 0, D("1125.00"), 0),
    }
    assert lines[("timesheet", "2")].tax_amount == D("75.00")
    assert lines[("timesheet", "3")].tax_amount == 0


def test_month_cap_resets_each_month() -> None:
    rows = with_lines(
        edit(base_rows(), "C1", cap_amount=D("1500.00"), cap_period="month"),
        ts(2, "5", 17),
        ts(3, "7.5", 18, month=4),
    )
    got = summary(rows)
    assert got["2"][:5] == ("partially_held", "BILLING_CAP_EXCEEDED", D("750.00"),
                            D("375.00"), D("375.00"))  # fmt: skip
    assert got["3"][0] == "billed"


def test_contract_cap_period_spans_months() -> None:
    rows = with_lines(
        edit(base_rows(), "C1", cap_amount=D("1200"), cap_period="contract"),
        ts(3, "1", 1, month=4),
    )
    assert summary(rows)["3"][0] == "partially_held"


def test_zero_cap_holds_everything() -> None:
    got = summary(edit(base_rows(), "C1", cap_amount=D("0"), cap_period="contract"))
    assert got["1"] == ("held", "BILLING_CAP_EXCEEDED", D("1125.00"), 0, D("1125.00"), 0)


def test_cap_applies_after_retainer() -> None:
    rows = with_lines(
        edit(retainer(base_rows(), "10"), "C1", cap_amount=D("100"), cap_period="contract"),
        ts(2, "5", 17),
    )
    got = summary(rows)
    assert got["1"][0] == "non_billable"
    assert got["2"] == ("partially_held", "BILLING_CAP_EXCEEDED", D("375.00"), D("100.00"),
                        D("275.00"), D("2.50"))  # fmt: skip


def test_null_approved_at_sorts_after_every_timestamp() -> None:
    rows = with_lines(
        edit(
            edit(base_rows(), "C1", cap_amount=D("1500"), cap_period="contract"),
            "T1",
            approved_at=None,
        ),
        ts(2, "7.5", 30),
    )
    got = summary(rows)
    assert got["2"][0] == "billed" and got["1"][0] == "partially_held"


def test_ties_break_on_numeric_timesheet_id() -> None:
    rows = with_lines(
        edit(base_rows(), "C1", cap_amount=D("1500"), cap_period="contract"), ts(9, "7.5", 16)
    )
    rows = {k: v for k, v in rows.items() if k != "T1"}
    rows["T10"] = ts(10, "7.5", 16)  # same approved_at as 9; "10" < "9" as text, 9 < 10 as int
    got = summary(rows)
    assert got["9"][0] == "billed" and got["10"][0] == "partially_held"


def test_released_line_moves_cap_away_from_later_lines() -> None:
    rows = with_lines(
        edit(base_rows(), "C1", cap_amount=D("1500"), cap_period="contract"), ts(2, "7.5", 17)
    )
    held_first = edit(rows, "P1", status="on_hold")
    assert {s[0] for s in summary(held_first).values()} == {"held"}
    assert summary(rows)["2"][0] == "partially_held"  # released: 1 bills before 2


def test_held_lines_consume_nothing() -> None:
    rows = with_lines(
        edit(base_rows(), "C1", cap_amount=D("1500"), cap_period="contract"), ts(2, "7.5", 17)
    )
    rows = edit(rows, "T1", billable=False)
    assert summary(rows)["2"][0] == "billed"


def test_zero_value_candidate_is_billed_with_zero() -> None:
    got = summary(edit(base_rows(), "R1", hourly_rate=D("0")))
    assert got["1"] == ("billed", None, 0, 0, 0, 0)


def test_milestones_share_a_cap_in_acceptance_order() -> None:
    rows = edit(milestone_rows(), "C2", cap_amount=D("6000"), cap_period="contract")
    rows["M2"] = Milestone("M2", "P2", "Build", D("3000"), date(2024, 5, 1), "accepted", at(19))
    rows["M3"] = Milestone("M3", "P2", "Run", D("10"), date(2024, 5, 1), "accepted", at(25))
    got = summary(rows)
    assert got["M2"] == ("billed", None, D("3000.00"), D("3000.00"), 0, 0)
    assert got["M1"] == ("partially_held", "BILLING_CAP_EXCEEDED", D("5000.00"), D("3000.00"),
                         D("2000.00"), 0)  # fmt: skip
    assert got["M3"] == ("held", "BILLING_CAP_EXCEEDED", D("10.00"), 0, D("10.00"), 0)


def test_milestone_month_cap_uses_accepted_month() -> None:
    rows = edit(milestone_rows(), "C2", cap_amount=D("5000"), cap_period="month")
    rows["M2"] = Milestone("M2", "P2", "Build", D("3000"), None, "accepted", at(1, month=4))
    assert summary(rows)["M2"][0] == "billed"


def test_schedule_lines() -> None:
    rows = milestone_rows()
    rows["M2"] = Milestone("M2", "P2", "Build", D("3000"), date(2024, 6, 1), "planned")
    rows["M3"] = Milestone("M3", "P2", "Dropped", D("1"), None, "cancelled")
    rows["M4"] = Milestone("M4", "P9", "Orphan", D("2"), None, "completed")
    _, schedule = targets(rows)
    assert set(schedule) == {"M1", "M2", "M4"}
    m2 = schedule["M2"]
    assert (m2.contract_id, m2.project_id, m2.due_date, m2.amount, m2.currency, m2.status) == (
        "C2", "P2", date(2024, 6, 1), D("3000"), "GBP", "planned",
    )  # fmt: skip
    assert (schedule["M4"].contract_id, schedule["M4"].currency) == (None, None)
    tm = edit(rows, "C2", contract_type="time_and_materials")
    lines, schedule = targets(tm)
    assert ("milestone", "M1") not in lines and "M1" in schedule  # schedule regardless of type


def test_milestone_and_timesheet_states_coexist() -> None:
    lines, _ = targets(milestone_rows())
    assert {k: t.state for k, t in lines.items()} == {
        ("timesheet", "1"): State.BILLED,
        ("milestone", "M1"): State.BILLED,
    }
