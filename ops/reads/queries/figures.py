"""Reconciliation figures per (project, period) and per period, for reports and the dashboard.

The source is the ERP table ``recon_snapshots`` (what the flow last published to
``recon.snapshots``). :func:`recomputed` gives the same figures straight from
``billing_line_state`` and the ledger (:func:`sinks.erp.recon.figures`), for a report that must
not trail the flow by the recon interval.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select, union

from dataflows.billing.target import ZERO
from sinks.erp import recon
from sinks.erp import tables as t

COLUMNS = (
    "project_id",
    "period",
    "approved_hours",
    "billable_hours",
    "non_billable_hours",
    "covered_hours",
    "billed_amount",
    "tax_amount",
    "held_amount",
    "held_count",
    "exception_count",
    "ledger_entries",
)


def snapshot_rows(conn: Connection, period: str | None = None) -> list[dict[str, Any]]:
    """``recon_snapshots`` rows (with as_of and source_position), by period then project."""
    r = t.recon_snapshots
    query = select(r).order_by(r.c.period, r.c.project_id)
    if period is not None:
        query = query.where(r.c.period == period)
    return [dict(row) for row in conn.execute(query).mappings()]


def recomputed(conn: Connection, period: str | None = None) -> list[dict[str, Any]]:
    """Figures of every (project, period) that has line states or ledger entries, recomputed."""
    s, tx = t.billing_line_state, t.erp_billing_transactions
    keys = union(
        select(s.c.project_id, s.c.period).distinct(),
        select(tx.c.project_id, tx.c.period).distinct(),
    ).subquery()
    query = select(keys.c.project_id, keys.c.period)
    if period is not None:
        query = query.where(keys.c.period == period)
    found = sorted(
        ((p or "", per) for p, per in conn.execute(query) if per is not None),
        key=lambda k: (k[1], k[0]),
    )
    return [asdict(recon.figures(conn, project, per)) for project, per in found]


@dataclass(slots=True)
class PeriodTotal:
    period: str
    billed_amount: Decimal = ZERO
    tax_amount: Decimal = ZERO
    held_amount: Decimal = ZERO
    held_count: int = 0
    exception_count: int = 0


def by_period(rows: list[dict[str, Any]]) -> list[PeriodTotal]:
    """Totals per period of figure rows (exact Decimal sums), oldest period first."""
    totals: dict[str, PeriodTotal] = defaultdict(lambda: PeriodTotal(""))
    for row in rows:
        p = totals[row["period"]]
        p.period = row["period"]
        p.billed_amount += row["billed_amount"]
        p.tax_amount += row["tax_amount"]
        p.held_amount += row["held_amount"]
        p.held_count += row["held_count"]
        p.exception_count += row["exception_count"]
    return [totals[k] for k in sorted(totals)]
