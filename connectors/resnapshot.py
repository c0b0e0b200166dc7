"""The re-snapshot of a reopened period: its final items' PSA rows, delivered to the flow again.

At a close the flow drops the rows of the items that become final (it keeps a stub of a few
numbers, ``dataflows/billing/finals.py``); at a reopen those items wait until their own row
arrives again, and are then re-evaluated against the current sources (SPEC 2b). The rows come
back through a Debezium *incremental snapshot* of the PSA connector, asked for with a signal
row in the PSA's signal table (``signal.data.collection`` of ``connectors/psa.json``)::

    INSERT INTO debezium_signal (id, type, data) VALUES ('<id>', 'execute-snapshot',
      '{"data-collections": ["public.timesheets"], "type": "incremental",
        "additional-conditions": [{"data-collection": "public.timesheets",
                                   "filter": "work_date >= ''2026-01-01'' AND ..."}]}')

``filter`` is the WHERE condition Debezium adds to its chunk queries (Debezium 2.x/3.x
format). One signal per table, bounded by [A, B): A the first day of the earliest period of
the items the close made final (carried-forward items of earlier periods can be final in a
later close), B the first day after the reopened period. A milestone's period is the month of
its ``accepted_at`` in UTC, so its bounds are UTC instants. Rows in that window that are not
final items are delivered too: the flow treats an unchanged row as nothing new.

:func:`signal_rows` is pure (tested on the rows it builds); :func:`send` inserts them with
billsync's own PSA user (``PSA_DB_URL``: the owner of ``debezium_signal``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine, insert

from connectors.sources import psa_signal
from dataflows.billing.periods import next_period
from dataflows.billing.target import SourceType

SIGNAL_TYPE = "execute-snapshot"

# source_type -> (captured table, the column whose month is the item's period, literal suffix)
_BOUNDS: dict[str, tuple[str, str, str]] = {
    SourceType.TIMESHEET.value: ("public.timesheets", "work_date", ""),
    SourceType.MILESTONE.value: ("public.milestones", "accepted_at", " 00:00:00+00"),
}


@dataclass(frozen=True)
class Window:
    """Rows of ``table`` whose ``column`` lies in [first day of ``start``, first day after
    ``end``)."""

    table: str
    column: str
    start: str  # YYYY-MM
    end: str  # YYYY-MM, inclusive
    suffix: str = ""  # "" for a date column, " 00:00:00+00" for a timestamptz (UTC)

    @property
    def filter(self) -> str:
        low = f"{self.start}-01{self.suffix}"
        high = f"{next_period(self.end)}-01{self.suffix}"
        return f"{self.column} >= '{low}' AND {self.column} < '{high}'"


def windows(period: str, final_items: Iterable[tuple[str, str]]) -> list[Window]:
    """The windows covering the items made final by the close of ``period``:
    ``final_items`` are (source_type, item period) pairs; a table without any gets none."""
    earliest: dict[str, str] = {}
    for source_type, item_period in final_items:
        if source_type not in _BOUNDS:
            raise ValueError(f"unknown source_type {source_type!r} of a final item")
        if item_period > period:
            raise ValueError(f"item period {item_period} is after the closed period {period}")
        earliest[source_type] = min(item_period, earliest.get(source_type, item_period))
    out = []
    for source_type, (table, column, suffix) in _BOUNDS.items():
        if source_type in earliest:
            out.append(Window(table, column, earliest[source_type], period, suffix))
    return out


def signal_rows(
    period: str, final_items: Iterable[tuple[str, str]], token: str
) -> list[dict[str, str]]:
    """The ``debezium_signal`` rows (id, type, data) that re-snapshot the final items of the
    close of ``period``; ``token`` makes the ids unique (a reopen may be repeated)."""
    rows = []
    for w in windows(period, final_items):
        data = {
            "data-collections": [w.table],
            "type": "incremental",
            "additional-conditions": [{"data-collection": w.table, "filter": w.filter}],
        }
        rows.append(
            {
                "id": f"reopen-{period}-{w.table.rpartition('.')[2]}-{token}",
                "type": SIGNAL_TYPE,
                "data": json.dumps(data, separators=(", ", ": ")),
            }
        )
    return rows


def send(psa: Engine, rows: list[dict[str, str]]) -> int:
    """Insert the signal rows into the PSA's ``debezium_signal`` (one transaction)."""
    if rows:
        with psa.begin() as conn:
            conn.execute(insert(psa_signal), rows)
    return len(rows)


def new_token() -> str:
    return uuid.uuid4().hex[:12]
