"""Appending many rows to one table in the caller's transaction: ``COPY`` on PostgreSQL.

The ERP writer appends per batch hundreds of rows to ``erp_billing_transactions``,
``billing_outbox``, ``billing_line_state`` (new lines) and ``recon_dirty``. Sent as an
``executemany`` (psycopg's pipeline: one INSERT execution per row) the server parses, binds
and executes each row on its own; ``COPY ... FROM STDIN`` streams them into one statement.
Measured on the stack's PostgreSQL (BENCHMARKS.md, ``bench writer``, "COPY appends"): a
500-emission batch 206 ms with executemany, 154 ms with COPY (median, A/B in one run).

Same transaction, same rows: the values pass through each column's SQLAlchemy bind processor
first (so :class:`~sinks.erp.types.Money` still refuses a float and
:class:`~sinks.erp.types.UtcDateTime` a naive time), columns left out take their defaults
(``billing_outbox.id`` from its sequence, in row order, so the relay's id order is still the
order of the rows), and a constraint violation (a duplicate ``transaction_id``) fails the
statement and so the transaction, as an INSERT would. A driver error is raised as the
SQLAlchemy error an ``execute`` would raise (``IntegrityError``, ``OperationalError``...), and
a lost connection invalidates the SQLAlchemy connection first, so the writer's retry of
transient failures (``sinks/erp/writer.py``) treats both paths alike. Other databases and
drivers (SQLite in tests and embedded use) get the ``executemany`` INSERT.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, insert
from sqlalchemy.exc import DBAPIError


def append(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert ``rows`` (all with the same keys, the table's column names) into ``table``."""
    if not rows:
        return
    if conn.dialect.name != "postgresql" or conn.dialect.driver != "psycopg" or len(rows) < 2:
        conn.execute(insert(table), list(rows))
        return
    columns = [c for c in table.columns if c.name in rows[0]]
    names = [c.name for c in columns]
    unknown = set(rows[0]) - set(names)
    if unknown:  # what insert() would refuse too
        raise ValueError(f"{table.name} has no column(s) {sorted(unknown)}")
    procs = [c.type.bind_processor(conn.dialect) for c in columns]
    values = [
        [p(row[n]) if p is not None else row[n] for n, p in zip(names, procs, strict=True)]
        for row in rows
    ]  # a bind processor refuses a value here, before anything is sent
    preparer = conn.dialect.identifier_preparer
    statement = (  # identifiers from the table's metadata, quoted; no value is in the text
        f"COPY {preparer.format_table(table)} "
        f"({', '.join(preparer.quote(n) for n in names)}) FROM STDIN"
    )
    raw: Any = conn.connection.dbapi_connection  # psycopg.Connection: in this transaction
    dbapi: Any = conn.dialect.loaded_dbapi
    try:
        with raw.cursor() as cur, cur.copy(statement) as copy:
            for row_values in values:
                copy.write_row(row_values)
    except dbapi.Error as exc:
        lost = conn.dialect.is_disconnect(exc, raw, None)
        if lost:
            conn.invalidate(exc)
        raise DBAPIError.instance(
            statement,
            None,
            exc,
            dbapi.Error,
            hide_parameters=True,
            connection_invalidated=lost,
            dialect=conn.dialect,
        ) from exc
