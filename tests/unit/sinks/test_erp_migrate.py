"""sinks/erp/migrate.py: an ERP database from before closed periods gains their columns
(and the tables added since: accounting_periods, billing_progress)."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.dialects import postgresql, sqlite

from sinks.erp import tables as t
from sinks.erp.migrate import ADDED_COLUMNS, plan, upgrade

# billing_line_state and the ledger as the first release created them (no SPEC 2b columns)
_OLD_SCHEMA = (
    "CREATE TABLE billing_line_state (source_type VARCHAR(16) NOT NULL, "
    "source_id VARCHAR(64) NOT NULL, state VARCHAR(16) NOT NULL, period VARCHAR(7), "
    "PRIMARY KEY (source_type, source_id))",
    "CREATE TABLE erp_billing_transactions (transaction_id VARCHAR(36) PRIMARY KEY, "
    "period VARCHAR(7), amount VARCHAR(40) NOT NULL)",
    "INSERT INTO billing_line_state VALUES ('timesheet', '1', 'billed', '2026-01')",
)


def test_an_old_database_gains_the_columns_indexes_and_periods_table() -> None:
    engine = create_engine("sqlite://")
    with engine.begin() as conn:
        for sql in _OLD_SCHEMA:
            conn.execute(text(sql))
    done = upgrade(engine)
    assert {f"column {a}.{b}" for a, b in ADDED_COLUMNS} <= set(done)
    assert "table accounting_periods" in done
    assert "table billing_progress" in done  # SPEC 4: the input progress a restart compares
    assert {"index ix_bls_final_period", "index ix_ebt_posting_period"} <= set(done)
    with engine.connect() as conn:
        insp = inspect(conn)
        for table, column in ADDED_COLUMNS:
            assert column in {c["name"] for c in insp.get_columns(table)}, (table, column)
        # the existing row is not final: the server default filled it
        row = conn.execute(text("SELECT final, final_period FROM billing_line_state")).one()
    assert (bool(row.final), row.final_period) == (False, None)


def test_upgrade_twice_changes_nothing_the_second_time() -> None:
    engine = create_engine("sqlite://")
    t.metadata.create_all(engine)
    assert upgrade(engine) == []
    assert upgrade(engine) == []


def test_postgresql_additions_are_guarded_against_a_concurrent_upgrade() -> None:
    steps = plan(postgresql.dialect(), {"billing_line_state": ["source_id"]})
    assert [s.sql for s in steps] == [
        'ALTER TABLE "billing_line_state" ADD COLUMN IF NOT EXISTS final BOOLEAN '
        "DEFAULT false NOT NULL",
        'ALTER TABLE "billing_line_state" ADD COLUMN IF NOT EXISTS final_period VARCHAR(7)',
    ]


def test_a_missing_table_is_left_to_create_all_and_present_columns_are_skipped() -> None:
    present = {"billing_line_state": ["final", "final_period"]}
    assert plan(sqlite.dialect(), present) == []
