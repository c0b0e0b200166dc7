"""Bulk loading of generated rows, and emptying the source tables.

PostgreSQL (PSA) rows go through ``COPY … FROM STDIN`` (psycopg 3, binary-safe row writer);
MariaDB (CRM) rows through PyMySQL's ``executemany``, which rewrites one ``INSERT … VALUES``
into multi-row statements. Both commit every ``batch`` rows so no transaction grows without
bound (Debezium ships a transaction's events together). Each table is timed: rows/s is what
``billsync db seed`` reports and what the README records.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Engine, text

from dataflows.errors import ConfigError
from ops.sourcedb.generate import COLUMNS, Dataset, Row
from ops.sourcedb.install import describe
from ops.sourcedb.tables import CRM_TABLES, PSA_TABLES, crm_metadata, psa_metadata

Progress = Callable[[str, int], None]  # (table, rows just written)

# parents before children: the order an application would create them in
CRM_ORDER = ("accounts", "contracts", "contract_rates", "contract_amendments")
PSA_ORDER = ("employees", "projects", "milestones", "timesheets")


@dataclass(frozen=True)
class LoadStat:
    source: str
    table: str
    rows: int
    seconds: float

    @property
    def rows_per_s(self) -> int:
        return round(self.rows / self.seconds) if self.seconds > 0 else 0

    def as_row(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "table": self.table,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_s": self.rows_per_s,
        }


def _batches(rows: Iterable[Row], size: int) -> Iterator[list[Row]]:
    it = iter(rows)
    while chunk := list(islice(it, size)):
        yield chunk


def _utc_naive(value: Any) -> Any:
    """MariaDB TIMESTAMP takes a naive value in the session zone (UTC, see engines.py)."""
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def non_empty(psa: Engine, crm: Engine) -> list[str]:
    """``source.table`` of every source table that holds rows (missing tables are refused)."""
    out = []
    for source, engine, metadata, names in (
        ("psa", psa, psa_metadata, PSA_TABLES),
        ("crm", crm, crm_metadata, CRM_TABLES),
    ):
        for status in describe(source, engine, metadata):
            if status.table not in names:
                continue
            if not status.exists:
                raise ConfigError(
                    f"table {source}.{status.table} does not exist",
                    field=f"{source}.{status.table}",
                    fix="run `billsync db init` first",
                )
            if status.rows:
                out.append(f"{source}.{status.table}")
    return out


def load_crm(engine: Engine, data: Dataset, progress: Progress, batch: int) -> list[LoadStat]:
    stats = []
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table in CRM_ORDER:
            cols = COLUMNS[table]
            marks = ", ".join(["%s"] * len(cols))
            # table and column names are this module's constants; values are parameters
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608
            progress(table, 0)
            started, n = time.perf_counter(), 0
            for chunk in _batches(data.tables[table], batch):
                cur.executemany(sql, [tuple(_utc_naive(v) for v in row) for row in chunk])
                raw.commit()
                n += len(chunk)
                progress(table, len(chunk))
            stats.append(LoadStat("crm", table, n, time.perf_counter() - started))
    finally:
        raw.close()
    return stats


def _rows(data: Dataset, table: str) -> Iterable[Row]:
    return data.timesheets() if table == "timesheets" else data.tables[table]


def load_psa(engine: Engine, data: Dataset, progress: Progress, batch: int) -> list[LoadStat]:
    stats = []
    raw = engine.raw_connection()
    try:
        for table in PSA_ORDER:
            cols = ", ".join(COLUMNS[table])
            progress(table, 0)
            started, n = time.perf_counter(), 0
            for chunk in _batches(_rows(data, table), batch):
                cur = raw.cursor()
                with cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                    for row in chunk:
                        copy.write_row(row)
                raw.commit()
                n += len(chunk)
                progress(table, len(chunk))
            stats.append(LoadStat("psa", table, n, time.perf_counter() - started))
    finally:
        raw.close()
    return stats


def empty(psa: Engine, crm: Engine, *, row_by_row: bool = False) -> None:
    """Remove every row of the eight source tables (not Debezium's support tables).

    ``TRUNCATE`` by default: fast, but Debezium sees a truncate event (PostgreSQL) or nothing
    (MariaDB; Debezium skips truncates by default), so a running flow keeps its state.
    ``row_by_row`` deletes instead: every row becomes a Debezium delete event.
    """
    verb = "DELETE FROM {}" if row_by_row else "TRUNCATE TABLE {}"
    with psa.begin() as conn:
        if row_by_row:
            for table in reversed(PSA_ORDER):
                conn.execute(text(verb.format(table)))
        else:
            conn.execute(text(f"TRUNCATE TABLE {', '.join(PSA_ORDER)}"))
    with crm.begin() as conn:
        for table in reversed(CRM_ORDER):
            conn.execute(text(verb.format(table)))
