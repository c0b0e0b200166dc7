"""Create the source tables, idempotently, and report what exists.

ERP (PostgreSQL): the ERP tables and what the ``erp`` connector captures (``init_erp``).
PostgreSQL (PSA): tables, indexes, REPLICA IDENTITY FULL on the four PSA tables (so Debezium's
update and delete events carry the whole previous row) and an ``updated_at`` trigger that
stamps ``now()`` when an update leaves ``updated_at`` unchanged. MariaDB (CRM): tables with
``ON UPDATE CURRENT_TIMESTAMP(6)``. Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, func, inspect, select, text

from connectors.sources import (
    ERP_CAPTURED,
    HEARTBEAT_TABLE,
    PSA_FULL_IDENTITY,
    SIGNAL_TABLE,
    crm_metadata,
    erp_accounting_periods,
    erp_capture_metadata,
    psa_metadata,
)
from ops.stack import topology
from sinks.erp.migrate import upgrade

_TOUCH_FUNCTION = """
CREATE OR REPLACE FUNCTION psa_touch_updated_at() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
    NEW.updated_at := now();
  END IF;
  RETURN NEW;
END
$$
"""

_IDENTITY = {"d": "default", "f": "full", "n": "nothing", "i": "index"}


@dataclass(frozen=True)
class TableStatus:
    source: str
    table: str
    exists: bool
    rows: int | None
    replica_identity: str | None

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def init_psa(engine: Engine) -> None:
    with engine.begin() as conn:
        psa_metadata.create_all(conn, checkfirst=True)
        conn.execute(text(_TOUCH_FUNCTION))
        for table in PSA_FULL_IDENTITY:
            conn.execute(text(f'ALTER TABLE "{table}" REPLICA IDENTITY FULL'))
            conn.execute(
                text(
                    f'CREATE OR REPLACE TRIGGER "trg_{table}_updated_at" BEFORE UPDATE '
                    f'ON "{table}" FOR EACH ROW EXECUTE FUNCTION psa_touch_updated_at()'
                )
            )
        # Debezium writes heartbeats (so the slot advances on idle tables) and incremental
        # snapshot watermarks; without these grants the connector fails ~10 s after start.
        dbz = topology.PSA_DEBEZIUM
        conn.execute(text(f'GRANT INSERT, UPDATE ON "{HEARTBEAT_TABLE}" TO "{dbz}"'))
        conn.execute(text(f'GRANT INSERT, UPDATE, DELETE ON "{SIGNAL_TABLE}" TO "{dbz}"'))


def init_crm(engine: Engine) -> None:
    with engine.begin() as conn:
        crm_metadata.create_all(conn, checkfirst=True)
        # incremental snapshots write watermarks into the signal table
        conn.execute(
            text(
                f"GRANT INSERT, UPDATE, DELETE ON `{SIGNAL_TABLE}` TO '{topology.CRM_DEBEZIUM}'@'%'"
            )
        )


def erp_capture_statements(
    *, role_exists: bool, publication_exists: bool, published: set[str]
) -> list[str]:
    """The DDL that lets the erp connector capture the ERP (pure: the facts are read by
    :func:`init_erp`): full before-images of accounting_periods, the Debezium user's grants
    (when the role exists) and the publication of :data:`ERP_CAPTURED` (created, or
    completed with the tables it lacks)."""
    dbz, pub = topology.ERP_DEBEZIUM, topology.ERP_PUBLICATION
    out = [f'ALTER TABLE "{erp_accounting_periods.name}" REPLICA IDENTITY FULL']
    if role_exists:
        out.append(f'GRANT USAGE ON SCHEMA public TO "{dbz}"')
        out += [f'GRANT SELECT ON "{name}" TO "{dbz}"' for name in ERP_CAPTURED]
        out.append(f'GRANT INSERT, UPDATE ON "{HEARTBEAT_TABLE}" TO "{dbz}"')
        out.append(f'GRANT INSERT, UPDATE, DELETE ON "{SIGNAL_TABLE}" TO "{dbz}"')
    if not publication_exists:
        tables = ", ".join(f'"{name}"' for name in ERP_CAPTURED)
        out.append(f'CREATE PUBLICATION "{pub}" FOR TABLE {tables}')
    else:
        missing = [f'"{name}"' for name in ERP_CAPTURED if name not in published]
        if missing:
            out.append(f'ALTER PUBLICATION "{pub}" ADD TABLE {", ".join(missing)}')
    return out


def init_erp(engine: Engine) -> list[str]:
    """The ERP tables (up to date, ``sinks/erp/migrate.py``) and what the erp connector
    captures: accounting_periods, its signal and heartbeat tables, the Debezium user's grants
    and the publication. Run as erp_app, the owner of the tables, which may create a
    publication FOR TABLE (FOR ALL TABLES would need a superuser and would decode the
    ledger's writes for nothing). Returns notes on what could not be done (may be [])."""
    upgrade(engine)
    erp_capture_metadata.create_all(engine, checkfirst=True)
    if engine.dialect.name != "postgresql":
        return ["not PostgreSQL: no erp connector can capture this ERP database"]
    pub = {"p": topology.ERP_PUBLICATION}
    with engine.begin() as conn:
        role_exists = (
            conn.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": topology.ERP_DEBEZIUM}
            ).first()
            is not None
        )
        publication_exists = (
            conn.execute(text("SELECT 1 FROM pg_publication WHERE pubname = :p"), pub).first()
            is not None
        )
        published = set(
            conn.execute(
                text(
                    "SELECT tablename FROM pg_publication_tables "
                    "WHERE pubname = :p AND schemaname = current_schema()"
                ),
                pub,
            ).scalars()
        )
        for statement in erp_capture_statements(
            role_exists=role_exists, publication_exists=publication_exists, published=published
        ):
            conn.execute(text(statement))
    if not role_exists:
        return [
            f"role {topology.ERP_DEBEZIUM} does not exist: create it (`billsync stack up`) and "
            "rerun `billsync db init`"
        ]
    return []


def _identities(conn: Connection) -> dict[str, str]:
    rows = conn.execute(
        text(
            "SELECT c.relname, c.relreplident FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r'"
        )
    )
    return {name: _IDENTITY.get(code, code) for name, code in rows}


def describe(source: str, engine: Engine, metadata: MetaData) -> list[TableStatus]:
    """Each table of ``metadata``: does it exist, how many rows, its replica identity (PG)."""
    out: list[TableStatus] = []
    with engine.connect() as conn:
        present = set(inspect(conn).get_table_names())
        identities = _identities(conn) if engine.dialect.name == "postgresql" else {}
        for table in metadata.sorted_tables:
            exists = table.name in present
            rows = (
                conn.execute(select(func.count()).select_from(table)).scalar_one()
                if exists
                else None
            )
            out.append(TableStatus(source, table.name, exists, rows, identities.get(table.name)))
    return out
