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
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from sqlalchemy import Engine, text

from billsync.errors import ConfigError, StackError
from connectors.sources import CRM_TABLES, PSA_TABLES, crm_metadata, psa_metadata
from ops.sourcedb.generate import COLUMNS, Dataset, Row
from ops.sourcedb.install import describe

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


@contextmanager
def _loading(engine: Engine, source: str, what: str) -> Iterator[None]:
    """DB-API errors of the raw connection become a StackError naming source and table."""
    try:
        yield
    except engine.dialect.loaded_dbapi.Error as exc:
        raise StackError(f"{source} database", f"loading {what} failed: {exc}") from exc


def _crm_table(raw: Any, table: str, rows: Iterable[Row], progress: Progress, batch: int) -> int:
    cols = COLUMNS[table]
    marks = ", ".join(["%s"] * len(cols))
    # table and column names are this module's constants; values are parameters
    sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({marks})"  # noqa: S608
    cur, n = raw.cursor(), 0
    for chunk in _batches(rows, batch):
        cur.executemany(sql, [tuple(_utc_naive(v) for v in row) for row in chunk])
        raw.commit()
        n += len(chunk)
        progress(table, len(chunk))
    return n


def _psa_table(raw: Any, table: str, rows: Iterable[Row], progress: Progress, batch: int) -> int:
    cols = ", ".join(COLUMNS[table])
    n = 0
    for chunk in _batches(rows, batch):
        with raw.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for row in chunk:
                copy.write_row(row)
        raw.commit()
        n += len(chunk)
        progress(table, len(chunk))
    return n


def _load(
    source: str,
    engine: Engine,
    order: tuple[str, ...],
    writer: Callable[[Any, str, Iterable[Row], Progress, int], int],
    data: Dataset,
    progress: Progress,
    batch: int,
) -> list[LoadStat]:
    stats = []
    raw = engine.raw_connection()
    try:
        for table in order:
            progress(table, 0)
            started = time.perf_counter()
            with _loading(engine, source, table):
                n = writer(raw, table, _rows(data, table), progress, batch)
            stats.append(LoadStat(source, table, n, time.perf_counter() - started))
    finally:
        raw.close()
    return stats


def _rows(data: Dataset, table: str) -> Iterable[Row]:
    return data.timesheets() if table == "timesheets" else data.tables[table]


def load_crm(engine: Engine, data: Dataset, progress: Progress, batch: int) -> list[LoadStat]:
    """CRM tables, parents first, by multi-row INSERT batches."""
    return _load("crm", engine, CRM_ORDER, _crm_table, data, progress, batch)


def load_psa(engine: Engine, data: Dataset, progress: Progress, batch: int) -> list[LoadStat]:
    """PSA tables, parents first, by COPY batches; timesheets are generated while loading."""
    return _load("psa", engine, PSA_ORDER, _psa_table, data, progress, batch)


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
