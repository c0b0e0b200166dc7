"""Reconciliation figures as a Parquet file, typed for analysts' tools.

Amounts and hours are ``decimal128(18, 2)`` (exact, as in the ERP), counts ``int64``,
``as_of`` a UTC timestamp; no float anywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

_DECIMAL = pa.decimal128(18, 2)
_TYPES: dict[str, pa.DataType] = {
    "project_id": pa.string(),
    "period": pa.string(),
    "approved_hours": _DECIMAL,
    "billable_hours": _DECIMAL,
    "non_billable_hours": _DECIMAL,
    "covered_hours": _DECIMAL,
    "billed_amount": _DECIMAL,
    "tax_amount": _DECIMAL,
    "held_amount": _DECIMAL,
    "held_count": pa.int64(),
    "exception_count": pa.int64(),
    "ledger_entries": pa.int64(),
    "as_of": pa.timestamp("us", tz="UTC"),
    "source_position": pa.string(),
}


def write_figures(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    schema = pa.schema([(c, _TYPES.get(c, pa.string())) for c in columns])
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows], schema=schema)
    pq.write_table(table, path)
