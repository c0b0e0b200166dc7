"""Create the source tables, idempotently, and report what exists.

PostgreSQL (PSA): tables, indexes, REPLICA IDENTITY FULL on the four PSA tables (so Debezium's
update and delete events carry the whole previous row) and an ``updated_at`` trigger that
stamps ``now()`` when an update leaves ``updated_at`` unchanged. MariaDB (CRM): tables with
``ON UPDATE CURRENT_TIMESTAMP(6)``. Running it again changes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, func, inspect, select, text

from ops.sourcedb.tables import (
    HEARTBEAT_TABLE,
    PSA_FULL_IDENTITY,
    SIGNAL_TABLE,
    crm_metadata,
    psa_metadata,
)
from ops.stack import topology

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
