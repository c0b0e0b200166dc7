"""Finance's period calendar in the ERP (SPEC 2b): list, plan a close, close, reopen.

``accounting_periods`` holds one row per period that was ever closed; a period without a row
is open. These operations only write that table: the ``erp`` Debezium connector carries the
change to the flow, which applies the close (items become final, held and exception items are
carried forward) or the reopen at that point of the stream. So a close is *recorded* when
:func:`close` returns and *applied* when the flow reaches it.

The rules are pure functions of what the ERP holds (:func:`close_refusals`,
:func:`reopen_refusals`); the functions taking a ``Connection`` read and write it.

- Periods close in order: P cannot close while an earlier period with billing items (line
  states or ledger entries) is open. Held and exception items of periods <= P that are not
  final would be carried forward; a close refuses while there are any unless forced.
- Only the latest closed period can be reopened, and only with a reason.
- History: a close keeps ``reopened_at`` / ``reopen_reason`` and a reopen keeps
  ``closed_at`` / ``closed_by``, so the row shows the latest close and the latest reopen
  (a close after a reopen has ``closed_at > reopened_at``). The full history of every close
  and reopen is the ``erp.public.accounting_periods`` topic itself.

Amounts are summed in Python (exact on SQLite too, see ``ops/reads/queries``), per currency.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, insert, select, text, update

from billsync.errors import BillsyncError
from dataflows.billing.money import ZERO
from dataflows.billing.target import State
from sinks.erp import tables as t

PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
OPEN = "open"
CLOSED = "closed"
# states carried forward by a close (they stay open); the others become final (SPEC 2b)
CARRIED = (State.HELD.value, State.EXCEPTION.value)


class PeriodRefused(BillsyncError):
    """A close or reopen the rules do not allow; ``reasons`` says every rule that refused."""

    def __init__(self, period: str, reasons: Iterable[str]) -> None:
        self.period = period
        self.reasons = tuple(reasons)
        super().__init__(f"period {period} refused: " + "; ".join(self.reasons))


def valid_period(period: str) -> bool:
    """``YYYY-MM`` with a month 01-12."""
    return bool(PERIOD.match(period))


@dataclass(frozen=True)
class PeriodStatus:
    """One row of ``billsync periods list``."""

    period: str
    status: str
    closed_at: datetime | None = None
    closed_by: str | None = None
    reopened_at: datetime | None = None
    reopen_reason: str | None = None
    items: int = 0  # billing_line_state rows of the period
    final_items: int = 0
    carry_items: int = 0  # held or exception, not final: would be carried forward
    ledger_entries: int = 0
    billed: Mapping[str, Decimal] = field(default_factory=dict)  # currency -> billed_amount

    @property
    def has_items(self) -> bool:
        return self.items > 0 or self.ledger_entries > 0

    def as_row(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "status": self.status,
            "items": self.items,
            "final_items": self.final_items,
            "carry_items": self.carry_items,
            "ledger_entries": self.ledger_entries,
            "billed": {c: self.billed[c] for c in sorted(self.billed)},
            "closed_at": self.closed_at,
            "closed_by": self.closed_by,
            "reopened_at": self.reopened_at,
            "reopen_reason": self.reopen_reason,
        }


@dataclass(frozen=True)
class CarryItem:
    """An item a close would carry forward: held or in exception, not final."""

    source_type: str
    source_id: str
    state: str
    reason: str | None
    project_id: str | None
    contract_id: str | None
    period: str | None
    billable_amount: Decimal
    held_amount: Decimal
    currency: str | None

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ClosePlan:
    """What closing ``period`` would do, and why it may not."""

    period: str
    carry: tuple[CarryItem, ...] = ()
    finalising: int = 0  # items of periods <= period that would become final
    refusals: tuple[str, ...] = ()  # rules that refuse whatever --force says

    def blocked(self, force: bool) -> tuple[str, ...]:
        """Every reason the close is refused (carry-forward only without ``force``)."""
        if self.carry and not force:
            n = len(self.carry)
            return (
                *self.refusals,
                f"{n} item{'s' if n != 1 else ''} held or in exception would be carried "
                "forward (pass --force to close anyway)",
            )
        return self.refusals

    def carried_totals(self) -> dict[str, dict[str, Decimal]]:
        """currency -> {"billable_amount", "held_amount"} of the carried items."""
        out: dict[str, dict[str, Decimal]] = {}
        for item in self.carry:
            sums = out.setdefault(
                item.currency or "", {"billable_amount": ZERO, "held_amount": ZERO}
            )
            sums["billable_amount"] += item.billable_amount
            sums["held_amount"] += item.held_amount
        return out

    def as_dict(self, force: bool = False) -> dict[str, Any]:
        return {
            "period": self.period,
            "finalising": self.finalising,
            "carry_forward": [c.as_row() for c in self.carry],
            "carry_totals": self.carried_totals(),
            "refused": list(self.blocked(force)),
        }


@dataclass(frozen=True)
class Reopened:
    """A recorded reopen and the items its close had made final: (source_type, period)."""

    period: str
    reopened_at: datetime
    final_items: tuple[tuple[str, str], ...]


# --- the rules, pure ----------------------------------------------------------------------


def close_refusals(period: str, periods: Iterable[PeriodStatus]) -> tuple[str, ...]:
    """Why ``period`` may not close, given every known period (carry-forward aside)."""
    if not valid_period(period):
        return (f"{period!r} is not a period: write YYYY-MM, e.g. 2026-01",)
    out: list[str] = []
    known = {p.period: p for p in periods}
    if period in known and known[period].status == CLOSED:
        out.append(f"{period} is already closed")
    earlier = sorted(
        p.period for p in known.values() if p.period < period and p.status != CLOSED and p.has_items
    )
    if earlier:
        shown = ", ".join(earlier[:3]) + (
            f" and {len(earlier) - 3} more" if len(earlier) > 3 else ""
        )
        out.append(
            f"earlier period{'s' if len(earlier) > 1 else ''} with billing items still open: "
            f"{shown} (periods close in order: close {earlier[0]} first)"
        )
    return tuple(out)


def reopen_refusals(period: str, reason: str, periods: Iterable[PeriodStatus]) -> tuple[str, ...]:
    """Why ``period`` may not reopen with ``reason``."""
    if not valid_period(period):
        return (f"{period!r} is not a period: write YYYY-MM, e.g. 2026-01",)
    out: list[str] = []
    if not reason.strip():
        out.append("a reason is required (--reason TEXT): it is kept with the period")
    closed = sorted(p.period for p in periods if p.status == CLOSED)
    if period not in closed:
        out.append(f"{period} is not closed")
    elif closed[-1] != period:
        out.append(
            f"only the latest closed period can be reopened: that is {closed[-1]}, not {period}"
        )
    return tuple(out)


# --- reading the ERP ----------------------------------------------------------------------


def _calendar(conn: Connection) -> dict[str, dict[str, Any]]:
    a = t.accounting_periods
    return {r["period"]: dict(r) for r in conn.execute(select(a)).mappings()}


def list_periods(conn: Connection) -> list[PeriodStatus]:
    """Every period with billing items or a calendar row, oldest first."""
    s, e = t.billing_line_state, t.erp_billing_transactions
    items: dict[str, int] = defaultdict(int)
    finals: dict[str, int] = defaultdict(int)
    carry: dict[str, int] = defaultdict(int)
    billed: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(lambda: ZERO))
    query = select(s.c.period, s.c.state, s.c.final, s.c.currency, s.c.billed_amount).where(
        s.c.period.is_not(None)
    )
    for period, state, final, currency, amount in conn.execute(query):
        items[period] += 1
        if final:
            finals[period] += 1
        elif state in CARRIED:
            carry[period] += 1
        if amount:
            billed[period][currency or ""] += amount
    entries = {
        period: int(n)
        for period, n in conn.execute(
            select(e.c.period, func.count()).where(e.c.period.is_not(None)).group_by(e.c.period)
        )
    }
    calendar = _calendar(conn)
    out: list[PeriodStatus] = []
    for period in sorted(set(items) | set(entries) | set(calendar)):
        row = calendar.get(period, {})
        out.append(
            PeriodStatus(
                period=period,
                status=row.get("status") or OPEN,
                closed_at=row.get("closed_at"),
                closed_by=row.get("closed_by"),
                reopened_at=row.get("reopened_at"),
                reopen_reason=row.get("reopen_reason"),
                items=items.get(period, 0),
                final_items=finals.get(period, 0),
                carry_items=carry.get(period, 0),
                ledger_entries=entries.get(period, 0),
                billed=dict(billed.get(period, {})),
            )
        )
    return out


def plan_close(conn: Connection, period: str) -> ClosePlan:
    """What closing ``period`` would carry forward and finalise, and the rules that refuse."""
    refusals = close_refusals(period, list_periods(conn))
    if not valid_period(period):
        return ClosePlan(period, refusals=refusals)
    s = t.billing_line_state
    open_items = (s.c.period <= period) & s.c.final.is_(False)
    names = [f.name for f in fields(CarryItem)]
    carry = tuple(
        CarryItem(**{n: r[n] for n in names})
        for r in conn.execute(
            select(s)
            .where(open_items & s.c.state.in_(CARRIED))
            .order_by(s.c.period, s.c.source_type, s.c.source_id)
        ).mappings()
    )
    finalising = conn.execute(
        select(func.count()).select_from(s).where(open_items & s.c.state.not_in(CARRIED))
    ).scalar_one()
    return ClosePlan(period, carry=carry, finalising=int(finalising), refusals=refusals)


def final_items_of(conn: Connection, period: str) -> tuple[tuple[str, str], ...]:
    """(source_type, period) of the items the close of ``period`` made final, distinct."""
    s = t.billing_line_state
    rows = conn.execute(
        select(s.c.source_type, s.c.period)
        .where(s.c.final_period == period, s.c.period.is_not(None))
        .distinct()
        .order_by(s.c.source_type, s.c.period)
    )
    return tuple((st, p) for st, p in rows)


# --- writing the calendar -----------------------------------------------------------------


def _serialise(conn: Connection) -> None:
    """One period operation at a time: on PostgreSQL, a lock that conflicts with itself and
    with writes to the calendar, not with reads (Debezium's snapshot, ``periods list``)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("LOCK TABLE accounting_periods IN SHARE ROW EXCLUSIVE MODE"))


def close(conn: Connection, period: str, by: str, *, force: bool, now: datetime) -> ClosePlan:
    """Record the close of ``period`` (in the caller's transaction); refused with
    :class:`PeriodRefused` by the rules, and while items would carry forward unless ``force``."""
    _serialise(conn)
    plan = plan_close(conn, period)
    blocked = plan.blocked(force)
    if blocked:
        raise PeriodRefused(period, blocked)
    if not by.strip():
        raise PeriodRefused(period, ("closed_by is empty: pass --by NAME",))
    a = t.accounting_periods
    values = {"status": CLOSED, "closed_at": now, "closed_by": by.strip()}
    if period in _calendar(conn):
        conn.execute(update(a).where(a.c.period == period).values(**values))
    else:
        conn.execute(insert(a).values(period=period, **values))
    return plan


def reopen(conn: Connection, period: str, reason: str, *, now: datetime) -> Reopened:
    """Record the reopen of ``period`` (in the caller's transaction); refused with
    :class:`PeriodRefused` unless it is the latest closed period and ``reason`` is given.

    Returns the items its close made final, read before the reopen is recorded: the
    re-snapshot (``connectors/resnapshot.py``) delivers their rows to the flow again."""
    _serialise(conn)
    refusals = reopen_refusals(period, reason, list_periods(conn))
    if refusals:
        raise PeriodRefused(period, refusals)
    finals = final_items_of(conn, period)
    a = t.accounting_periods
    conn.execute(
        update(a)
        .where(a.c.period == period)
        .values(status=OPEN, reopened_at=now, reopen_reason=reason.strip())
    )
    return Reopened(period, now, finals)


def still_final(conn: Connection, period: str) -> int:
    """Items the ERP still marks final by the close of ``period``. After a reopen this falls
    to 0 once the flow has applied it (the ERP writer clears ``final`` of the period's items
    then): the point from which a re-snapshot of their rows is re-evaluated, not ignored."""
    s = t.billing_line_state
    query = (
        select(func.count()).select_from(s).where(s.c.final_period == period, s.c.final.is_(True))
    )
    return int(conn.execute(query).scalar_one())
