"""A small ERP on SQLite with line states, ledger entries and recon snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, create_engine, insert

from ops.reads.queries.tables import ensure
from sinks.erp import tables as t

D = Decimal
NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)


def line(source_id: str, state: str, reason: str | None, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "source_type": "timesheet",
        "source_id": source_id,
        "state": state,
        "reason": reason,
        "contract_id": "C1",
        "project_id": "P1",
        "period": "2026-03",
        "billable_amount": D("0.00"),
        "billed_amount": D("0.00"),
        "held_amount": D("0.00"),
        "tax_amount": D("0.00"),
        "covered_hours": D("0.00"),
        "currency": "EUR",
        "hours": D("8.00"),
        "billable": True,
        "source_position": f"psa:lsn={source_id}",
        "updated_at": NOW - timedelta(hours=int(source_id)),
    }
    row.update(kw)
    return row


def snapshot(project: str, period: str, billed: str, held: str, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "project_id": project,
        "period": period,
        "approved_hours": D("10.00"),
        "billable_hours": D("10.00"),
        "non_billable_hours": D("0.00"),
        "covered_hours": D("0.00"),
        "billed_amount": D(billed),
        "tax_amount": (D(billed) * D("0.2")).quantize(D("0.01")),
        "held_amount": D(held),
        "held_count": 1 if D(held) else 0,
        "exception_count": 0,
        "ledger_entries": 1,
        "as_of": NOW,
        "source_position": "psa:lsn=9",
    }
    row.update(kw)
    return row


def erp() -> Engine:
    engine = create_engine("sqlite://")
    t.metadata.create_all(engine)
    ensure(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(t.billing_line_state),
            [
                line("1", "held", "PROJECT_ON_HOLD"),
                line("2", "held", "PROJECT_ON_HOLD", contract_id="C2"),
                line("3", "exception", "NO_RATE"),
                line(
                    "4",
                    "partially_held",
                    "BILLING_CAP_EXCEEDED",
                    billable_amount=D("0.10"),
                    billed_amount=D("0.00"),
                    held_amount=D("0.10"),
                ),
                line(
                    "5",
                    "partially_held",
                    "BILLING_CAP_EXCEEDED",
                    billable_amount=D("0.20"),
                    held_amount=D("0.20"),
                ),
                line("6", "billed", None, billed_amount=D("960.00")),
                line("7", "non_billable", "NOT_BILLABLE", billable=False),
            ],
        )
        conn.execute(
            insert(t.recon_snapshots),
            [
                snapshot("P1", "2026-03", "960.00", "0.30"),
                snapshot("P2", "2026-03", "0.10", "0.00"),
                snapshot("P1", "2026-02", "1200.00", "0.00"),
            ],
        )
    return engine
