"""The erp connector on the real stack: `db init` made its tables, grants and publication; the
session fixture registered it; its live validation passes (the coordinator's e2e covers a
close and a reopen end to end)."""

from __future__ import annotations

from sqlalchemy import create_engine, text

from billsync.settings import Settings
from connectors.connect_client import ConnectClient
from connectors.registration import validate
from connectors.sources import ERP_CAPTURED
from ops.stack import topology as t


def test_the_publication_names_exactly_the_captured_tables(stack: Settings) -> None:
    engine = create_engine(stack.require("erp_db_url"))
    try:
        with engine.connect() as conn:
            published = set(
                conn.execute(
                    text(
                        "SELECT tablename FROM pg_publication_tables "
                        "WHERE pubname = :p AND schemaname = 'public'"
                    ),
                    {"p": t.ERP_PUBLICATION},
                ).scalars()
            )
            may_beat = conn.execute(
                text("SELECT has_table_privilege(:u, 'public.debezium_heartbeat', 'UPDATE')"),
                {"u": t.ERP_DEBEZIUM},
            ).scalar()
    finally:
        engine.dispose()
    assert published == set(ERP_CAPTURED)
    assert may_beat


def test_erp_validates_live_and_runs(stack: Settings) -> None:
    with ConnectClient(stack.connect_url) as connect:
        result = validate("erp", stack, connect)
        assert result.violations == [], result.violations
        assert result.connect_checked
        status = connect.status("erp")
    assert status is not None and status.running
