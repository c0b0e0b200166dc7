"""Compare the target state with ``billing_line_state``, the ledger and the invoice schedule."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, select

from dataflows.billing.target import ZERO, LineKey, LineTarget, ScheduleLine
from sinks.erp import tables as t
from sinks.erp.writer import STATE_FIELDS

# every stored field of a line state that the target determines (the writer's own list)
LINE_FIELDS = STATE_FIELDS
SCHEDULE_FIELDS = ("contract_id", "project_id", "due_date", "amount", "currency", "status")


@dataclass(frozen=True, slots=True)
class Difference:
    table: str
    key: str
    field: str
    expected: Any
    actual: Any


def _value(v: Any) -> Any:
    return v.value if hasattr(v, "value") else v


def compare(
    conn: Connection,
    lines: Mapping[LineKey, LineTarget],
    schedule: Mapping[str, ScheduleLine],
) -> list[Difference]:
    diffs: list[Difference] = []
    stored = {
        (r["source_type"], r["source_id"]): r
        for r in conn.execute(select(t.billing_line_state)).mappings()
    }
    for key in sorted(set(lines) | set(stored)):
        name = f"{key[0]}:{key[1]}"
        want, have = lines.get(key), stored.get(key)
        if want is None or have is None:
            diffs.append(
                Difference(
                    "billing_line_state",
                    name,
                    "(row)",
                    "present" if want else "absent",
                    "present" if have else "absent",
                )
            )
            continue
        for f in LINE_FIELDS:
            if _value(getattr(want, f)) != have[f]:
                diffs.append(
                    Difference("billing_line_state", name, f, _value(getattr(want, f)), have[f])
                )
    sums: dict[LineKey, tuple[Decimal, Decimal]] = {}
    tx = t.erp_billing_transactions
    for st, sid, amount, tax in conn.execute(
        select(tx.c.source_type, tx.c.source_id, tx.c.amount, tx.c.tax_amount)
    ):
        a, b = sums.get((st, sid), (ZERO, ZERO))
        sums[(st, sid)] = (a + amount, b + tax)
    for key in sorted(set(lines) | set(sums)):
        target = lines.get(key)
        expected = (target.billed_amount, target.tax_amount) if target else (ZERO, ZERO)
        have_s = sums.get(key, (ZERO, ZERO))
        if expected != have_s:
            diffs.append(
                Difference(
                    "erp_billing_transactions",
                    f"{key[0]}:{key[1]}",
                    "sum(amount), sum(tax_amount)",
                    expected,
                    have_s,
                )
            )
    sched = {r["milestone_id"]: r for r in conn.execute(select(t.invoice_schedule)).mappings()}
    for mid in sorted(set(schedule) | set(sched)):
        want_s, have_r = schedule.get(mid), sched.get(mid)
        if want_s is None or have_r is None:
            diffs.append(
                Difference(
                    "invoice_schedule",
                    mid,
                    "(row)",
                    "present" if want_s else "absent",
                    "present" if have_r else "absent",
                )
            )
            continue
        for f in SCHEDULE_FIELDS:
            if getattr(want_s, f) != have_r[f]:
                diffs.append(Difference("invoice_schedule", mid, f, getattr(want_s, f), have_r[f]))
    return diffs
