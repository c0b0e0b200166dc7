"""Closed accounting periods (SPEC 2b), the pure parts: period arithmetic and finality.

A period is ``YYYY-MM``. Finance closes periods in order; at the close of period P every
item with ``period <= P`` whose state is ``billed``, ``partially_held`` or ``non_billable``
becomes *final*: frozen until its own source row changes in a column that bills
(:func:`own_digest`). Every ledger entry is posted into :func:`posting_period`: never into
a closed period.
"""

from __future__ import annotations

import hashlib
from operator import attrgetter

from billsync.model import AccountingPeriod, Milestone, Row, Timesheet
from dataflows.billing.target import LineTarget, State

# states that become final at a close; held and exception are carried forward (stay open)
FINAL_STATES = frozenset({State.BILLED, State.PARTIALLY_HELD, State.NON_BILLABLE})

# the columns of an item's own row whose change reopens a final item (SPEC 2b)
OWN_COLUMNS: dict[str, tuple[str, ...]] = {
    "timesheets": ("hours", "billable", "status", "work_date", "project_id", "employee_id"),
    "milestones": ("amount", "status", "accepted_at", "project_id"),
}

# the same tuples as ``tuple(getattr(row, c) for c in OWN_COLUMNS[table])``, built in C: a
# close digests every item it makes final (the digest's bytes must never change: stubs keep it)
_TIMESHEET_OWN = attrgetter(*OWN_COLUMNS["timesheets"])
_MILESTONE_OWN = attrgetter(*OWN_COLUMNS["milestones"])

CLOSE = "close"
REOPEN = "reopen"


def next_period(period: str) -> str:
    """The month after ``period`` (``2025-12`` -> ``2026-01``)."""
    year, month = int(period[:4]), int(period[5:7])
    return f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"


def posting_period(period: str | None, closed_through: str | None) -> str | None:
    """SPEC 2b: the later of the item's own period and the first period after the latest
    closed one. An item without a period posts into the first open period."""
    first_open = next_period(closed_through) if closed_through is not None else None
    if period is None:
        return first_open
    if first_open is None:
        return period
    return max(period, first_open)


def is_closed(row: Row | None) -> bool:
    return isinstance(row, AccountingPeriod) and row.status == "closed"


def becomes_final(target: LineTarget, closed_through: str) -> bool:
    """Whether an open item becomes final at the close of ``closed_through``."""
    return (
        target.period is not None
        and target.period <= closed_through
        and target.state in FINAL_STATES
    )


def own_digest(row: Row | None) -> int:
    """A stable 64-bit digest of the columns of an item's own row that bill (0: no row).

    Stable across processes (not Python's salted ``hash``): it is kept in recovery state.
    """
    if row is None:
        return 0
    if isinstance(row, Timesheet):
        values = _TIMESHEET_OWN(row)
    elif isinstance(row, Milestone):
        values = _MILESTONE_OWN(row)
    else:
        raise TypeError(f"{type(row).__name__} is not a billing item")
    raw = hashlib.blake2b(repr(values).encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big") or 1
