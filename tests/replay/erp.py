"""Reading a SQLite ERP for entry-for-entry comparisons, wall clock left out."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from pathlib import Path
from typing import Any

import orjson

# fields that carry the wall clock of the run, not the input: rows' created_at / updated_at,
# the outbox payloads' times (a dead letter's `timestamp` is when it was dead-lettered:
# dataflows/cdc/deadletter.py; a recon snapshot's `as_of` when it was taken)
WALL_CLOCK = frozenset(
    {"created_at", "updated_at", "received_at", "occurred_at", "as_of", "timestamp"}
)


def rows(db: Path, sql: str, drop: Collection[str] = WALL_CLOCK) -> list[dict[str, Any]]:
    """The rows of ``sql`` as dicts, without the columns in ``drop`` (read only)."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        conn.row_factory = sqlite3.Row
        return [{k: v for k, v in dict(r).items() if k not in drop} for r in conn.execute(sql)]


def payload(text: str) -> dict[str, Any]:
    """An outbox record's JSON payload without its wall-clock fields."""
    return {k: v for k, v in orjson.loads(text).items() if k not in WALL_CLOCK}


LEDGER = "SELECT * FROM erp_billing_transactions ORDER BY source_type, source_id, seq"
LINES = "SELECT * FROM billing_line_state ORDER BY source_type, source_id"
OUTBOX = "SELECT topic, key, payload FROM billing_outbox ORDER BY id"
