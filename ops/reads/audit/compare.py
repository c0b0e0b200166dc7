"""Compare the target state with ``billing_line_state``, the ledger and the invoice schedule.

Per item the ledger is checked twice: its sums (amount, tax_amount) equal the target's, and
its **net posting** carries the target's dimensions (:func:`dataflows.billing.ledger.
dimension_mismatches`): every entry since the item's newest charge — the entries that make
up the current non-zero net — has the target's billing dimensions (customer, legal entity,
item code, revenue account, cost center, contract, project, period, currency), and the
newest entry also its work_date, hours and rate. A difference is reported as the field
``net <dimension>``; where entries of one net posting disagree, ``actual`` lists the values.

Final items (SPEC 2b: ``billing_line_state.final``) are checked against their frozen values:
their ledger nets to the amounts stored when the close froze them; they take no part in the
batch target (:func:`read_finals` feeds them to ``compute_targets``, which allocates the open
items against what they consumed), and a final milestone's schedule line is frozen with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from dataflows.billing.ledger import (
    DIMENSIONS,
    NetPosting,
    dimension_mismatches,
    net_posting,
)
from dataflows.billing.target import ZERO, LineKey, LineTarget, ScheduleLine, SourceType, State
from sinks.erp import tables as t
from sinks.erp.tables import STATE_FIELDS

# every stored field of a line state that the target determines (the writer's own list,
# less ``final``, which the record of closes decides, not the target)
LINE_FIELDS = tuple(f for f in STATE_FIELDS if f != "final")
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


def read_finals(conn: Connection) -> dict[LineKey, LineTarget]:
    """The ERP's record of final items: each one's frozen line state, as a target."""
    s = t.billing_line_state
    out: dict[LineKey, LineTarget] = {}
    for r in conn.execute(select(s).where(s.c.final.is_(True))).mappings():
        out[(r["source_type"], r["source_id"])] = LineTarget(
            source_type=SourceType(r["source_type"]),
            source_id=r["source_id"],
            state=State(r["state"]),
            reason=r["reason"],
            contract_id=r["contract_id"],
            project_id=r["project_id"],
            period=r["period"],
            billable_amount=r["billable_amount"],
            billed_amount=r["billed_amount"],
            held_amount=r["held_amount"],
            tax_amount=r["tax_amount"],
            covered_hours=r["covered_hours"],
            currency=r["currency"],
            hours=r["hours"],
            billable=r["billable"],
        )
    return out


def compare(
    conn: Connection,
    lines: Mapping[LineKey, LineTarget],
    schedule: Mapping[str, ScheduleLine],
    finals: Mapping[LineKey, LineTarget] | None = None,
) -> list[Difference]:
    """``lines``/``schedule``: the batch target of the open items; ``finals``: the final
    items' frozen line states (:func:`read_finals`), checked against their own ledger."""
    finals = finals or {}
    diffs: list[Difference] = []
    stored = {
        (r["source_type"], r["source_id"]): r
        for r in conn.execute(select(t.billing_line_state)).mappings()
        if (r["source_type"], r["source_id"]) not in finals
    }
    for key in sorted(set(lines) | set(stored)):
        name = f"{key[0]}:{key[1]}"
        diffs += _row_differences(
            "billing_line_state", name, lines.get(key), stored.get(key), LINE_FIELDS, _value
        )
    nets = _net_postings(conn)
    for key in sorted(set(finals)):
        frozen, net = finals[key], nets.pop(key, NetPosting())
        if (frozen.billed_amount, frozen.tax_amount) != (net.amount, net.tax_amount):
            diffs.append(
                Difference(
                    "erp_billing_transactions",
                    f"{key[0]}:{key[1]}",
                    "final: sum(amount), sum(tax_amount)",
                    (frozen.billed_amount, frozen.tax_amount),
                    (net.amount, net.tax_amount),
                )
            )
    for key in sorted(set(lines) | set(nets)):
        target = lines.get(key)
        net = nets.get(key, NetPosting())
        expected = (target.billed_amount, target.tax_amount) if target else (ZERO, ZERO)
        have_s = (net.amount, net.tax_amount)
        name = f"{key[0]}:{key[1]}"
        if expected != have_s:
            diffs.append(
                Difference(
                    "erp_billing_transactions",
                    name,
                    "sum(amount), sum(tax_amount)",
                    expected,
                    have_s,
                )
            )
        elif target is not None:
            for dim, want_d, have_d in dimension_mismatches(target, net):
                diffs.append(
                    Difference("erp_billing_transactions", name, f"net {dim}", want_d, have_d)
                )
    sched = {
        r["milestone_id"]: r
        for r in conn.execute(select(t.invoice_schedule)).mappings()
        if (SourceType.MILESTONE.value, r["milestone_id"]) not in finals
    }
    for mid in sorted(set(schedule) | set(sched)):
        diffs += _row_differences(
            "invoice_schedule", mid, schedule.get(mid), sched.get(mid), SCHEDULE_FIELDS
        )
    return diffs


def _row_differences(
    table: str,
    name: str,
    want: object | None,
    have: RowMapping | None,
    fields: Iterable[str],
    value: Callable[[Any], Any] = lambda v: v,
) -> list[Difference]:
    """One stored row against its target: the row missing on either side, or each field that
    differs (``value`` turns a target's field into what the table stores)."""
    if want is None or have is None:
        return [
            Difference(
                table,
                name,
                "(row)",
                "present" if want else "absent",
                "present" if have else "absent",
            )
        ]
    return [
        Difference(table, name, f, value(getattr(want, f)), have[f])
        for f in fields
        if value(getattr(want, f)) != have[f]
    ]


def _net_postings(conn: Connection) -> dict[LineKey, NetPosting]:
    """Every item's :class:`NetPosting`, one pass over the ledger in item order."""
    tx = t.erp_billing_transactions
    cols = [tx.c[c] for c in ("source_type", "source_id", "amount", "tax_amount", "entry_type")]
    query = select(*cols, *(tx.c[d] for d in DIMENSIONS)).order_by(
        tx.c.source_type, tx.c.source_id, tx.c.seq
    )
    rows = conn.execute(query).mappings()
    return {
        key: net_posting(entries)
        for key, entries in groupby(rows, key=lambda r: (r["source_type"], r["source_id"]))
    }
