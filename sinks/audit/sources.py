"""Read the current source rows (PSA and CRM) into typed rows of :mod:`dataflows.model`."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, select

from dataflows.billing.batch import World
from dataflows.model import ROW_TYPES, Row
from ops.sourcedb import tables as src


def _typed(row_type: type[Row], values: dict[str, Any]) -> Row:
    kw: dict[str, Any] = {}
    for f in fields(row_type):
        v = values.get(f.name)
        if isinstance(v, datetime) and v.tzinfo is None:
            v = v.replace(tzinfo=UTC)  # CRM sessions run in UTC (ops/sourcedb/engines.py)
        if f.name == "timesheet_id" and v is not None:
            v = int(v)
        kw[f.name] = v
    return row_type(**kw)


def read_world(psa: Engine, crm: Engine) -> World:
    """One consistent read per database (a transaction each), typed like the CDC edge."""
    rows: list[Row] = []
    for engine, names in ((psa, src.PSA_TABLES), (crm, src.CRM_TABLES)):
        with engine.connect() as conn:
            for name in names:
                table: Table = getattr(src, name)
                for r in conn.execute(select(table)).mappings():
                    rows.append(_typed(ROW_TYPES[name], dict(r)))
    return World.of(rows)
