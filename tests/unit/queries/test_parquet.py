"""`recon report --format parquet`: exact decimals and typed columns, no floats."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ops.reads.queries.figures import COLUMNS
from ops.reads.queries.parquet import write_figures


def test_figures_round_trip_exactly(tmp_path: Path) -> None:
    row = {c: Decimal("0.00") for c in COLUMNS}
    row.update(
        project_id="P1",
        period="2026-03",
        billed_amount=Decimal("1234567890.15"),
        held_count=2,
        exception_count=1,
        ledger_entries=5,
        as_of=datetime(2026, 3, 31, 23, 59, tzinfo=UTC),
        source_position="psa:lsn=1:tx=2",
    )
    columns = (*COLUMNS, "as_of", "source_position")
    path = tmp_path / "figures.parquet"
    write_figures(path, [row], columns)
    table = pq.read_table(path)
    assert table.schema.field("billed_amount").type == pa.decimal128(18, 2)
    assert table.schema.field("held_count").type == pa.int64()
    back = table.to_pylist()[0]
    assert back["billed_amount"] == Decimal("1234567890.15")
    assert back["as_of"] == datetime(2026, 3, 31, 23, 59, tzinfo=UTC)
    assert not any(pa.types.is_floating(f.type) for f in table.schema)
