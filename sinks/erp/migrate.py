"""Bring an existing ERP database up to the current tables (``sinks/erp/tables.py``).

``metadata.create_all`` creates missing tables but never touches a table that exists, so an
ERP database created before a column was added lacks it. :func:`upgrade` adds, idempotently:

- every missing table (``accounting_periods`` in a database from before SPEC 2b,
  ``billing_progress`` in one from before SPEC 4's replay rule: no row in it means nothing
  recorded, so the first restart after the upgrade replays as before);
- every column of :data:`ADDED_COLUMNS` its table lacks (PostgreSQL: ``ADD COLUMN IF NOT
  EXISTS``, safe against a concurrent upgrade; SQLite: ``ADD COLUMN`` when ``PRAGMA
  table_info`` does not list it), with its default, so existing rows get ``final = false``;
- every missing index on one of those columns.

Only additive changes live here: a column is never dropped, retyped or renamed. Call it after
``create_all`` wherever the schema is ensured (``ErpWriter.ensure_schema``, ``billsync
periods``, ``billsync db init``); running it again changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Column, Connection, Dialect, Engine, Index, inspect, text
from sqlalchemy.schema import CreateColumn

from sinks.erp import tables as t

# the erp connector's publication and role (ops/stack/topology.py names them for the stack;
# the names are the contract between `billsync db init`, this module and connectors/erp.json)
ERP_PUBLICATION = "billsync_erp"
ERP_DEBEZIUM = "debezium_erp"

# (table, column) pairs added after the first release of the ERP schema, oldest first
ADDED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("erp_billing_transactions", "posting_period"),
    ("billing_line_state", "final"),
    ("billing_line_state", "final_period"),
)


@dataclass(frozen=True)
class Step:
    """One DDL statement of an upgrade and what it adds."""

    what: str  # "column billing_line_state.final", "index ix_bls_final_period"
    sql: str


def column_ddl(dialect: Dialect, table: str, column: Column[object]) -> str:
    """``ALTER TABLE … ADD COLUMN …`` for ``column`` as the dialect spells it."""
    spec = str(CreateColumn(column).compile(dialect=dialect))
    guard = "IF NOT EXISTS " if dialect.name == "postgresql" else ""
    return f'ALTER TABLE "{table}" ADD COLUMN {guard}{spec}'


def plan(dialect: Dialect, existing: Mapping[str, Sequence[str]]) -> list[Step]:
    """The column additions an ERP database needs, given ``existing``: table -> its column
    names (tables absent from it do not exist yet: ``create_all`` makes them whole)."""
    steps: list[Step] = []
    for table_name, column_name in ADDED_COLUMNS:
        present = existing.get(table_name)
        if present is None or column_name in present:
            continue
        column = t.metadata.tables[table_name].c[column_name]
        steps.append(
            Step(f"column {table_name}.{column_name}", column_ddl(dialect, table_name, column))
        )
    return steps


def _indexes() -> list[tuple[str, Index]]:
    """(table name, index) of every index on a column of :data:`ADDED_COLUMNS`."""
    added = set(ADDED_COLUMNS)
    return [
        (table.name, index)
        for table in t.metadata.sorted_tables
        for index in sorted(table.indexes, key=lambda i: str(i.name))
        if any((table.name, c.name) in added for c in index.columns)
    ]


def _existing(conn: Connection) -> dict[str, list[str]]:
    insp = inspect(conn)
    names = set(insp.get_table_names())
    return {
        table: [c["name"] for c in insp.get_columns(table)]
        for table in {table for table, _ in ADDED_COLUMNS}
        if table in names
    }


def upgrade(engine: Engine) -> list[str]:
    """Create missing ERP tables, add missing columns and indexes; what it did (may be [])."""
    done: list[str] = []
    with engine.begin() as conn:
        steps = plan(conn.dialect, _existing(conn))
        for step in steps:
            conn.execute(text(step.sql))
            done.append(step.what)
        before = set(inspect(conn).get_table_names())
        t.metadata.create_all(conn, checkfirst=True)
        done += [f"table {n}" for n in sorted(set(t.metadata.tables) - before)]
        for table_name, index in _indexes():
            known = {i["name"] for i in inspect(conn).get_indexes(table_name)}
            if index.name not in known:
                index.create(conn, checkfirst=False)
                done.append(f"index {index.name}")
    return done


def publish_periods(engine: Engine) -> list[str]:
    """Let the erp connector capture this schema's ``accounting_periods`` (PostgreSQL).

    ``billsync db init`` creates the publication with ``public.accounting_periods``; an ERP
    in another schema (a second installation in one database, each e2e test's own schema)
    adds its own table here, when its writer first ensures the schema: the connector
    captures ``<schema>.accounting_periods`` of every schema into
    ``erp.<schema>.accounting_periods``, and each flow reads its own
    (``BILLSYNC_PERIODS_TOPIC``). Nothing happens without the publication (no erp
    connector set up: SQLite, or ``db init`` not run) or when the table is in it already.
    """
    if engine.dialect.name != "postgresql":
        return []
    done: list[str] = []
    with engine.begin() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
        exists = conn.execute(
            text("SELECT 1 FROM pg_publication WHERE pubname = :p"), {"p": ERP_PUBLICATION}
        ).first()
        if exists is None:
            return []
        published = conn.execute(
            text(
                "SELECT 1 FROM pg_publication_tables WHERE pubname = :p "
                "AND schemaname = :s AND tablename = 'accounting_periods'"
            ),
            {"p": ERP_PUBLICATION, "s": schema},
        ).first()
        if published is not None:
            return []
        role = conn.execute(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": ERP_DEBEZIUM}
        ).first()
        q = f'"{schema}"'
        statements = [f"ALTER TABLE {q}.accounting_periods REPLICA IDENTITY FULL"]
        if role is not None:
            statements += [
                f'GRANT USAGE ON SCHEMA {q} TO "{ERP_DEBEZIUM}"',
                f'GRANT SELECT ON {q}.accounting_periods TO "{ERP_DEBEZIUM}"',
            ]
        statements.append(f'ALTER PUBLICATION "{ERP_PUBLICATION}" ADD TABLE {q}.accounting_periods')
        for sql in statements:
            conn.execute(text(sql))
        done.append(f"publication {ERP_PUBLICATION}: {schema}.accounting_periods")
    return done
