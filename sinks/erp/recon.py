"""Reconciliation snapshots: the figures of every (project, period) whose lines changed.

The ERP writer marks touched keys in ``recon_dirty`` inside its transaction. :func:`flush`
recomputes the figures of those keys from ``billing_line_state`` and the ledger (SPEC 3,
``recon.snapshots``), upserts ``recon_snapshots``, queues the records for the compacted topic
in ``billing_outbox`` and clears the keys — one transaction, so a crash loses no key.
:func:`figures` is also what ``billsync recon report`` and the tests recompute from.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import Connection, and_, delete, func, insert, select

from dataflows.billing.target import ZERO, State
from sinks.erp import tables as t
from sinks.erp.records import RECON_TOPIC, jsonable

HELD_STATES = (State.HELD.value, State.PARTIALLY_HELD.value)


@dataclass(frozen=True, slots=True)
class Figures:
    project_id: str
    period: str
    approved_hours: Decimal = ZERO
    billable_hours: Decimal = ZERO
    non_billable_hours: Decimal = ZERO
    covered_hours: Decimal = ZERO
    billed_amount: Decimal = ZERO
    tax_amount: Decimal = ZERO
    held_amount: Decimal = ZERO
    held_count: int = 0
    exception_count: int = 0
    ledger_entries: int = 0


def figures(conn: Connection, project_id: str, period: str) -> Figures:
    """Recompute one key's figures: summed by PostgreSQL in ``NUMERIC`` (exact, one row back
    per table instead of every line and ledger entry of the key), or in Python on SQLite,
    whose ``Money`` columns are text (a SQL sum there would be a float)."""
    if conn.dialect.name == "postgresql":
        return _figures_in_sql(conn, project_id, period)
    return _figures_in_python(conn, project_id, period)


def _of_key(table: Any, project_id: str, period: str) -> Any:
    pid = project_id or None
    return and_(
        table.c.project_id.is_(pid) if pid is None else table.c.project_id == pid,
        table.c.period == period,
    )


def _figures_in_sql(conn: Connection, project_id: str, period: str) -> Figures:
    s = t.billing_line_state
    timesheet = s.c.source_type == "timesheet"
    lines = conn.execute(
        select(
            func.sum(s.c.hours).filter(timesheet),
            func.sum(s.c.hours).filter(and_(timesheet, s.c.billable.is_(True))),
            func.sum(s.c.hours).filter(and_(timesheet, s.c.state == State.NON_BILLABLE.value)),
            func.sum(s.c.covered_hours),
            func.sum(s.c.held_amount),
            func.count().filter(s.c.state.in_(HELD_STATES)),
            func.count().filter(s.c.state == State.EXCEPTION.value),
        ).where(_of_key(s, project_id, period))
    ).one()
    tx = t.erp_billing_transactions
    ledger = conn.execute(
        select(func.sum(tx.c.amount), func.sum(tx.c.tax_amount), func.count()).where(
            _of_key(tx, project_id, period)
        )
    ).one()
    approved, billable, non_billable, covered, held, held_count, exceptions = lines
    billed, tax, entries = ledger
    return Figures(
        project_id,
        period,
        approved or ZERO,  # a sum over no rows is NULL
        billable or ZERO,
        non_billable or ZERO,
        covered or ZERO,
        billed or ZERO,
        tax or ZERO,
        held or ZERO,
        held_count,
        exceptions,
        entries,
    )


def _figures_in_python(conn: Connection, project_id: str, period: str) -> Figures:
    s = t.billing_line_state
    approved = billable = non_billable = covered = held = ZERO
    held_count = exceptions = 0
    for r in conn.execute(select(s).where(_of_key(s, project_id, period))).mappings():
        hours = r["hours"] or ZERO
        if r["source_type"] == "timesheet":
            approved += hours
            if r["billable"]:
                billable += hours
            if r["state"] == State.NON_BILLABLE.value:
                non_billable += hours
        covered += r["covered_hours"]
        held += r["held_amount"]
        held_count += r["state"] in HELD_STATES
        exceptions += r["state"] == State.EXCEPTION.value
    tx = t.erp_billing_transactions
    billed = tax = ZERO
    entries = 0
    for amount, tax_amount in conn.execute(
        select(tx.c.amount, tx.c.tax_amount).where(_of_key(tx, project_id, period))
    ):
        billed += amount
        tax += tax_amount
        entries += 1
    return Figures(
        project_id,
        period,
        approved,
        billable,
        non_billable,
        covered,
        billed,
        tax,
        held,
        held_count,
        exceptions,
        entries,
    )


def flush(conn: Connection, now: datetime, limit: int = 10_000) -> int:
    """Snapshot the dirty keys (at most ``limit``); returns how many were written."""
    d = t.recon_dirty
    keys = conn.execute(select(d).limit(limit)).mappings().all()
    for k in keys:
        f = figures(conn, k["project_id"], k["period"])
        row: dict[str, Any] = {**asdict(f), "as_of": now, "source_position": k["source_position"]}
        r = t.recon_snapshots
        conn.execute(delete(r).where(r.c.project_id == f.project_id, r.c.period == f.period))
        conn.execute(insert(r), [row])
        payload = orjson.dumps({c: jsonable(v) for c, v in row.items()}).decode()
        conn.execute(
            insert(t.billing_outbox),
            [
                {
                    "topic": RECON_TOPIC,
                    "key": f"{f.project_id}|{f.period}".encode(),
                    "payload": payload,
                    "created_at": now,
                }
            ],
        )
        conn.execute(delete(d).where(d.c.project_id == k["project_id"], d.c.period == k["period"]))
    return len(keys)
