"""``billsync bench writer`` at a tiny size: the figures' shape, and a bulk-loaded ERP that
reads back exactly what the writer itself would have stored."""

from __future__ import annotations

from decimal import Decimal

import orjson
from sqlalchemy import create_engine, func, select
from typer.testing import CliRunner

from ops.bench.writer import fill
from ops.cli import app
from sinks.erp import tables as t


def test_bench_writer_json_shape() -> None:
    args = ["bench", "writer", "--small", "200", "--large", "2000", "--batch", "20"]
    result = CliRunner().invoke(app, [*args, "--repeat", "2", "--json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["database"] == "sqlite"
    assert [s["ledger_rows"] for s in data["sizes"]] == [200, 2000]
    assert all(s["median_ms"] > 0 and s["batches"] == 2 for s in data["sizes"])
    assert data["ratio"] > 0 and data["target_ratio"] == 1.5


def test_the_bulk_load_is_what_the_writer_stores() -> None:
    engine = create_engine("sqlite://")
    try:
        assert fill(engine, 100) == 50
        tx, s = t.erp_billing_transactions, t.billing_line_state
        with engine.connect() as c:
            ledger = c.execute(select(func.count()).select_from(tx)).scalar_one()
            sums = c.execute(select(tx.c.amount).where(tx.c.source_id == "000000007")).scalars()
            state = c.execute(select(s).where(s.c.source_id == "000000007")).mappings().one()
            created = c.execute(select(tx.c.created_at).limit(1)).scalar_one()
        assert ledger == 100
        assert sum(sums, Decimal(0)) == state["billed_amount"] == Decimal("480.00")
        assert created.tzinfo is not None
    finally:
        engine.dispose()
