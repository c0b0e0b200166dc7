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
from sqlalchemy import Connection, delete, insert, select

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
    """Recompute one key's figures. Sums in Python: exact on SQLite and PostgreSQL alike."""
    s = t.billing_line_state
    approved = billable = non_billable = covered = held = ZERO
    held_count = exceptions = 0
    pid = project_id or None
    for r in conn.execute(
        select(s).where(
            s.c.project_id.is_(pid) if pid is None else s.c.project_id == pid, s.c.period == period
        )
    ).mappings():
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
        select(tx.c.amount, tx.c.tax_amount).where(
            tx.c.project_id.is_(pid) if pid is None else tx.c.project_id == pid,
            tx.c.period == period,
        )
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
