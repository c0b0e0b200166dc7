"""The writer reads a batch's items by the full key of their indexes, never by a scan.

Every SELECT the writer issues during a batch is run again under SQLite's EXPLAIN QUERY
PLAN: none may scan ``erp_billing_transactions`` or ``billing_line_state`` (before the fix
both were read by ``source_id IN (...)`` alone, while both keys start with source_type).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event

from dataflows.emissions import Emission
from sinks.erp.writer import ErpWriter, ledger_query, line_state_query

from .test_erp_writer import em, em_of, target


@pytest.fixture
def db() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    yield engine
    engine.dispose()


def plans(db: Engine, batch: list[Emission]) -> dict[str, list[str]]:
    """SELECT statement -> its query plan lines, for every SELECT of one applied batch."""
    seen: list[tuple[str, Any]] = []

    def record(_c: Any, _cur: Any, statement: str, params: Any, _ctx: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, params))

    writer = ErpWriter(db, clock=lambda: datetime(2026, 4, 1, tzinfo=UTC))
    writer.ensure_schema()
    writer.apply(batch)  # something to find
    event.listen(db, "before_cursor_execute", record)
    try:
        writer.apply(batch)
    finally:
        event.remove(db, "before_cursor_execute", record)
    out: dict[str, list[str]] = {}
    with db.connect() as c:
        raw = c.connection.driver_connection
        assert raw is not None
        for statement, params in seen:
            rows = raw.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()
            out[statement] = [r[-1] for r in rows]
    return out


def test_a_batch_reads_line_state_and_ledger_by_their_index(db: Engine) -> None:
    batch = [em(target("10.00"), "p1"), em_of("8", target("20.00", source_id="8"), "p2")]
    found = plans(db, batch)
    touched = {
        table: [plan for stmt, plan in found.items() if f"FROM {table}" in stmt]
        for table in ("billing_line_state", "erp_billing_transactions")
    }
    assert all(touched.values()), touched  # both tables were read
    for table, table_plans in touched.items():
        for plan in table_plans:
            assert not any(step.startswith(f"SCAN {table}") for step in plan), plan
            assert any(step.startswith(f"SEARCH {table} USING") for step in plan), plan


def test_the_queries_name_the_whole_key() -> None:
    for query in (ledger_query("timesheet", ["1", "2"]), line_state_query("milestone", ["M1"])):
        where = str(query.whereclause)
        assert "source_type = " in where and "source_id IN " in where
