"""Live checks of a connector configuration against its source database, before registering.

Connect's validate endpoint logs in and checks slots and publications, but it does not check
that captured tables exist, nor that the Debezium user may write the heartbeat table (a missing
grant fails the task at its first heartbeat, after it was reported RUNNING). These checks run as
billsync's own user of the source (the URL among ``PSA_DB_URL``, ``CRM_DB_URL``, ``ERP_DB_URL`` and
``BILLSYNC_SOURCE_DB_URLS`` whose host, port and database match the configuration); a source
without a matching URL is not checked here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection

from billsync.settings import Settings
from connectors.engines import normalise_url, reachable
from connectors.rules import BINLOG_CLASSES, POSTGRES_CLASS, Violation

_INSERT_INTO = re.compile(r"\binsert\s+into\s+([A-Za-z0-9_.\"]+)", re.IGNORECASE)


def _candidate_urls(settings: Settings) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for field, value in (
        ("PSA_DB_URL", settings.psa_db_url),
        ("CRM_DB_URL", settings.crm_db_url),
        ("ERP_DB_URL", settings.erp_db_url),
    ):
        if value is not None:
            out.append((field, value.get_secret_value()))
    for name, secret in settings.source_db_urls.items():
        out.append((f"BILLSYNC_SOURCE_DB_URLS[{name}]", secret.get_secret_value()))
    return out


def matching_url(config: Mapping[str, str], settings: Settings) -> tuple[str, str] | None:
    """(setting name, URL) of the source database this configuration captures, if known."""
    host = config.get("database.hostname", "")
    port = config.get("database.port", "")
    if config.get("connector.class") == POSTGRES_CLASS:
        database = config.get("database.dbname", "")
    else:
        database = config.get("database.include.list", "").split(",")[0].strip()
    for field, url in _candidate_urls(settings):
        parts = urlsplit(url)
        if (
            parts.hostname == host
            and str(parts.port or "") == port
            and parts.path.lstrip("/") == database
        ):
            return field, url
    return None


def _included(config: Mapping[str, str]) -> list[str]:
    return [t.strip() for t in config.get("table.include.list", "").split(",") if t.strip()]


def _pg_checks(conn: Connection, config: Mapping[str, str]) -> list[Violation]:
    out: list[Violation] = []
    user = config.get("database.user", "")
    for table in _included(config):
        # Debezium reads each entry as a regular expression over <schema>.<table>
        matched = conn.execute(
            text("SELECT 1 FROM pg_tables WHERE (schemaname || '.' || tablename) ~ :re LIMIT 1"),
            {"re": f"^({table})$"},
        ).scalar()
        if matched is None:
            out.append(
                Violation(
                    "table.include.list",
                    f"unknown table {table}: no table of the source database matches it",
                    "create it (`billsync db init`) or remove it from table.include.list",
                )
            )
    role = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": user}).scalar()
    if role is None:
        out.append(
            Violation(
                "database.user",
                f"role {user!r} does not exist",
                "use the Debezium user the stack creates (debezium_psa, debezium_erp)",
            )
        )
        return out
    wanted: list[tuple[str, str, str, str]] = []
    match = _INSERT_INTO.search(config.get("heartbeat.action.query", ""))
    if match:
        privileges = (
            "INSERT, UPDATE" if "conflict" in config["heartbeat.action.query"].lower() else "INSERT"
        )
        wanted.append(("heartbeat.action.query", match.group(1), privileges, "heartbeats"))
    signal = config.get("signal.data.collection")
    if signal:
        wanted.append(
            ("signal.data.collection", signal, "INSERT, UPDATE, DELETE", "snapshot watermarks")
        )
    for field, table, privileges, why in wanted:
        if conn.execute(text("SELECT to_regclass(:t)"), {"t": table}).scalar() is None:
            out.append(
                Violation(field, f"table {table} does not exist", "create it (`billsync db init`)")
            )
            continue
        missing = [
            p.strip()
            for p in privileges.split(",")
            if not conn.execute(
                text("SELECT has_table_privilege(:u, :t, :p)"),
                {"u": user, "t": table, "p": p.strip()},
            ).scalar()
        ]
        if missing:
            out.append(
                Violation(
                    field,
                    f"{user} may not {'/'.join(missing)} {table}: Debezium writes {why} there "
                    "and the task would fail",
                    f"GRANT {', '.join(missing)} ON {table} TO {user}",
                )
            )
    return out


def _binlog_checks(conn: Connection, config: Mapping[str, str]) -> list[Violation]:
    out: list[Violation] = []
    for entry in _included(config):
        schema, _, table = entry.rpartition(".")
        found = conn.execute(
            text(
                "SELECT 1 FROM information_schema.tables "
                "WHERE table_schema = :s AND table_name = :t"
            ),
            {"s": schema, "t": table},
        ).scalar()
        if found is None:
            out.append(
                Violation(
                    "table.include.list",
                    f"unknown table {entry}: it does not exist in the source database",
                    "create it (`billsync db init`) or remove it from table.include.list",
                )
            )
    return out


def check_source(config: Mapping[str, str], settings: Settings) -> list[Violation]:
    """Live checks; [] when no billsync URL matches this source."""
    found = matching_url(config, settings)
    if found is None:
        return []
    field, url = found
    cls = config.get("connector.class")
    engine = create_engine(normalise_url(url, field))
    try:
        with reachable(field), engine.connect() as conn:
            if cls == POSTGRES_CLASS:
                return _pg_checks(conn, config)
            if cls in BINLOG_CLASSES:
                return _binlog_checks(conn, config)
            return []
    finally:
        engine.dispose()
