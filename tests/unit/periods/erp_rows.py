"""A SQLite ERP with line states and ledger rows, for the periods tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import Engine, insert

from sinks.erp import tables as t

NOW = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)


def line(
    source_id: str,
    period: str,
    state: str = "billed",
    *,
    source_type: str = "timesheet",
    billed: str = "100.00",
    billable: str | None = None,
    held: str = "0.00",
    reason: str | None = None,
    currency: str = "EUR",
    final: bool = False,
    final_period: str | None = None,
) -> dict[str, object]:
    return {
        "source_type": source_type,
        "source_id": source_id,
        "state": state,
        "reason": reason,
        "contract_id": "C1",
        "project_id": "P1",
        "period": period,
        "billable_amount": Decimal(billable if billable is not None else billed),
        "billed_amount": Decimal(billed),
        "held_amount": Decimal(held),
        "tax_amount": Decimal("0.00"),
        "covered_hours": Decimal("0.00"),
        "currency": currency,
        "updated_at": NOW,
        "final": final,
        "final_period": final_period,
    }


def entry(n: int, period: str, amount: str = "100.00") -> dict[str, object]:
    return {
        "transaction_id": f"tx-{n}",
        "source_type": "timesheet",
        "source_id": str(n),
        "seq": 0,
        "period": period,
        "amount": Decimal(amount),
        "tax_amount": Decimal("0.00"),
        "entry_type": "charge",
        "created_at": NOW,
    }


def fill(
    engine: Engine,
    lines: Sequence[dict[str, object]],
    entries: Sequence[dict[str, object]] = (),
) -> None:
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        if lines:
            conn.execute(insert(t.billing_line_state), list(lines))
        if entries:
            conn.execute(insert(t.erp_billing_transactions), list(entries))
