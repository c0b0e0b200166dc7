"""Read the current source rows (PSA and CRM) into typed rows of :mod:`billsync.model`.

One consistent read per source database: every table of a source is read in ONE transaction
that sees ONE snapshot (:func:`snapshot_read`), so a change committed while the audit reads
(a timesheet approved between reading ``projects`` and ``timesheets``) is either wholly in the
audit's world or wholly out of it — never half. The two sources are separate databases and
cannot share a snapshot; what one source says about the other's rows is judged by the billing
rules (unknown references are held, SPEC section 2), exactly as the streaming flow does.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, select

from billsync.errors import ConfigError
from billsync.model import ROW_TYPES, Row
from connectors import sources as src
from dataflows.billing.batch import World

# Per dialect: the execution options whose transaction keeps one snapshot for every
# statement, and the statement that begins that transaction.
# - PostgreSQL: READ COMMITTED (the default) takes a new snapshot per statement; REPEATABLE
#   READ takes one at the transaction's first statement and keeps it. Read only, too.
# - MariaDB/MySQL (InnoDB): REPEATABLE READ, and START TRANSACTION WITH CONSISTENT SNAPSHOT
#   takes the snapshot at once instead of at the first read.
# - SQLite: the driver (pysqlite) begins no transaction before a SELECT, so each statement
#   reads the latest commit; an explicit BEGIN makes the reads one transaction (one snapshot
#   in WAL mode; a shared lock that holds writers off otherwise).
_BINLOG_BEGIN = "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"
_PLANS: dict[str, tuple[dict[str, Any], str | None]] = {
    "postgresql": ({"isolation_level": "REPEATABLE READ", "postgresql_readonly": True}, None),
    "mysql": ({"isolation_level": "REPEATABLE READ"}, _BINLOG_BEGIN),
    "mariadb": ({"isolation_level": "REPEATABLE READ"}, _BINLOG_BEGIN),
    "sqlite": ({}, "BEGIN"),
}


def snapshot_plan(dialect: str) -> tuple[dict[str, Any], str | None]:
    """(execution options, BEGIN statement or None) for one snapshot on ``dialect``."""
    try:
        return _PLANS[dialect]
    except KeyError:
        raise ConfigError(
            f"the audit cannot read a {dialect} database in one snapshot",
            field="PSA_DB_URL / CRM_DB_URL",
            fix="sources are PostgreSQL (PSA) and MariaDB (CRM)",
        ) from None


@contextmanager
def snapshot_read(engine: Engine) -> Iterator[Connection]:
    """A connection whose statements all read one snapshot of ``engine``'s database.

    The transaction only reads; closing the connection rolls it back.
    """
    options, begin = snapshot_plan(engine.dialect.name)
    with engine.connect() as conn:
        if options:  # before the transaction begins: they apply to the next one
            conn = conn.execution_options(**options)
        if begin is not None:
            conn.exec_driver_sql(begin)
        yield conn


def _typed(row_type: type[Row], values: dict[str, Any]) -> Row:
    kw: dict[str, Any] = {}
    for f in fields(row_type):
        v = values.get(f.name)
        if isinstance(v, datetime) and v.tzinfo is None:
            v = v.replace(tzinfo=UTC)  # CRM sessions run in UTC (connectors/engines.py)
        if f.name == "timesheet_id" and v is not None:
            v = int(v)
        kw[f.name] = v
    return row_type(**kw)


def read_world(psa: Engine, crm: Engine) -> World:
    """One consistent read per database (one snapshot each), typed like the CDC edge."""
    rows: list[Row] = []
    for engine, names in ((psa, src.PSA_TABLES), (crm, src.CRM_TABLES)):
        with snapshot_read(engine) as conn:
            for name in names:
                table: Table = getattr(src, name)
                for r in conn.execute(select(table)).mappings():
                    rows.append(_typed(ROW_TYPES[name], dict(r)))
    return World.of(rows)
