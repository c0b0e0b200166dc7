"""Recon figures on PostgreSQL: summed in SQL, equal to the Python sums to the last digit.

Why it exists: ``sinks/erp/recon.py`` sums a (project, period)'s figures in PostgreSQL (one
row back instead of every line and ledger entry; the recon flush was a tenth of the flow's CPU
at 1,000 changes/s, BENCHMARKS.md) and in Python on SQLite. The unit tier runs on SQLite
only, so this compares both paths on the stack's PostgreSQL: every state, NULL hours and
billable, milestones, a NULL project, a key with no rows — the same values and the same
scale (``Decimal('0.00')``, not ``Decimal('0')``: the figures go to Kafka as text).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import insert

from billsync.settings import Settings
from sinks.erp import migrate, recon
from sinks.erp import tables as t
from tests.integration.erp_schema import erp_schema

D = Decimal
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def _line(n: int, project: str | None, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source_type": "timesheet", "source_id": str(n), "state": "billed", "reason": None,
        "contract_id": "C1", "project_id": project, "period": "2026-11",
        "billable_amount": D("0.00"), "billed_amount": D("0.00"), "held_amount": D("0.00"),
        "tax_amount": D("0.00"), "covered_hours": D("0.00"), "currency": "GBP",
        "hours": D("1.00"), "billable": True, "updated_at": NOW,
    }  # fmt: skip
    row.update(kw)
    return row


def _entry(n: int, seq: int, project: str | None, amount: str, tax: str) -> dict[str, Any]:
    return {
        "transaction_id": f"tx-{n}-{seq}", "source_type": "timesheet", "source_id": str(n),
        "seq": seq, "project_id": project, "period": "2026-11", "amount": D(amount),
        "tax_amount": D(tax), "entry_type": "charge" if seq == 0 else "adjustment",
        "created_at": NOW,
    }  # fmt: skip


def test_sql_and_python_sums_agree(stack: Settings, unique_name: Callable[[str], str]) -> None:
    lines = [
        _line(1, "P1", hours=D("7.50"), billed_amount=D("750.00"), tax_amount=D("150.00")),
        _line(2, "P1", hours=D("2.25"), billable=False, state="non_billable",
              reason="NOT_BILLABLE"),
        _line(3, "P1", hours=D("4.00"), state="partially_held", held_amount=D("125.55"),
              covered_hours=D("1.50")),
        _line(4, "P1", hours=None, billable=None, state="exception", reason="INVALID_HOURS"),
        _line(5, "P1", state="held", reason="PROJECT_ON_HOLD"),
        _line(6, "P1", source_type="milestone", source_id="M-1", hours=None, billable=None,
              billed_amount=D("5000.00")),
        _line(7, None, hours=D("3.00"), state="held", reason="PROJECT_UNKNOWN"),
        _line(8, "P1", hours=D("1.10"), period="2026-10"),
    ]  # fmt: skip
    entries = [
        _entry(1, 0, "P1", "750.00", "150.00"),
        _entry(1, 1, "P1", "-0.01", "0.00"),
        _entry(3, 0, "P1", "274.45", "54.89"),
        _entry(9, 0, None, "10.00", "2.00"),
    ]
    with erp_schema(stack, unique_name("recon")) as (_url, engine):
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(insert(t.billing_line_state), lines)
            conn.execute(insert(t.erp_billing_transactions), entries)
        with engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
            for project, period in (("P1", "2026-11"), ("", "2026-11"), ("P1", "2026-10"),
                                    ("P2", "2026-11")):  # fmt: skip
                in_sql = recon._figures_in_sql(conn, project, period)
                in_python = recon._figures_in_python(conn, project, period)
                assert in_sql == in_python, (project, period)
                assert repr(in_sql) == repr(in_python), (project, period)  # same scale
                assert recon.figures(conn, project, period) == in_sql
            p1 = recon.figures(conn, "P1", "2026-11")
    assert (p1.approved_hours, p1.billable_hours, p1.non_billable_hours) == (
        D("14.75"),
        D("12.50"),
        D("2.25"),
    )
    assert (p1.billed_amount, p1.tax_amount, p1.ledger_entries) == (D("1024.44"), D("204.89"), 3)
    assert (p1.held_amount, p1.held_count, p1.exception_count) == (D("125.55"), 2, 1)
