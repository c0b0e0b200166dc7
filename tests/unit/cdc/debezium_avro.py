"""Debezium-shaped Avro writer schemas and framed records, built with fastavro for unit tests.

The schemas mimic what Debezium 3 (schema.name.adjustment.mode=avro) writes through an Avro
converter: an ``Envelope`` record with optional ``before``/``after`` ``Value`` records (the
second a by-name reference), a connector-specific ``Source`` record, ``op`` and ``ts_ms``;
``connect.name`` / ``connect.parameters`` annotations on decimals, enums and time types.
With ``transaction=True`` the envelope has the optional ``transaction`` block a connector with
``provide.transaction.metadata`` fills (:func:`tx_block`); :data:`TX_VALUE` and
:func:`tx_marker` are the BEGIN/END records of ``<prefix>.transaction``.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from fastavro import parse_schema, schemaless_writer

from dataflows.cdc.wire import frame
from ops.bench import debezium as bench

# the ``transaction`` block and the ``<prefix>.transaction`` value: one copy, the bench's
TX_BLOCK = bench.TX_BLOCK
TX_VALUE = bench.TX_VALUE
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def decimal_type(precision: int, scale: int) -> dict[str, Any]:
    return {
        "type": "bytes",
        "scale": scale,
        "precision": precision,
        "connect.version": 1,
        "connect.parameters": {"scale": str(scale), "connect.decimal.precision": str(precision)},
        "connect.name": "org.apache.kafka.connect.data.Decimal",
        "logicalType": "decimal",
    }


ZONED = {"type": "string", "connect.version": 1, "connect.name": "io.debezium.time.ZonedTimestamp"}
DATE = {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}
MICRO_TS = {"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.MicroTimestamp"}
MILLI_TS = {"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.Timestamp"}
NANO_TS = {"type": "long", "connect.version": 1, "connect.name": "io.debezium.time.NanoTimestamp"}
CONNECT_TS = {
    "type": "long",
    "connect.version": 1,
    "connect.name": "org.apache.kafka.connect.data.Timestamp",
    "logicalType": "timestamp-millis",
}
CONNECT_DATE = {
    "type": "int",
    "connect.version": 1,
    "connect.name": "org.apache.kafka.connect.data.Date",
    "logicalType": "date",
}
TINYINT = {"type": "int", "connect.type": "int16"}


def enum_type(*allowed: str) -> dict[str, Any]:
    return {
        "type": "string",
        "connect.version": 1,
        "connect.parameters": {"allowed": ",".join(allowed)},
        "connect.name": "io.debezium.data.Enum",
    }


@dataclass(frozen=True)
class Column:
    name: str
    avro: Any  # the column's Avro type (without null)
    nullable: bool = False

    def field(self) -> dict[str, Any]:
        if self.nullable:
            return {"name": self.name, "type": ["null", self.avro], "default": None}
        return {"name": self.name, "type": self.avro}


def C(
    name: str, avro: Any = "string", nullable: bool = False
) -> Column:  # short: reads like a column list
    return Column(name, avro, nullable)


PG_TABLES: dict[str, list[Column]] = {
    "employees": [
        C("employee_id"),
        C("name"),
        C("email"),
        C("labor_category", nullable=True),
        C("cost_center"),
        C("legal_entity"),
        C("active", "boolean"),
        C("updated_at", ZONED),
    ],
    "projects": [
        C("project_id"),
        C("code"),
        C("name"),
        C("account_id"),
        C("contract_id"),
        C("status"),
        C("legal_entity"),
        C("updated_at", ZONED),
    ],
    "timesheets": [
        C("timesheet_id", "long"),
        C("employee_id"),
        C("project_id"),
        C("work_date", DATE),
        C("hours", decimal_type(5, 2)),
        C("billable", "boolean"),
        C("status"),
        C("approved_at", ZONED, nullable=True),
        C("notes", nullable=True),
        C("updated_at", ZONED),
    ],
    "milestones": [
        C("milestone_id"),
        C("project_id"),
        C("name"),
        C("amount", decimal_type(14, 2)),
        C("due_date", DATE),
        C("status"),
        C("accepted_at", ZONED, nullable=True),
        C("updated_at", ZONED),
    ],
}

MARIA_TABLES: dict[str, list[Column]] = {
    "accounts": [
        C("account_id"),
        C("name"),
        C("tax_jurisdiction"),
        C("currency"),
        C("erp_customer_id", nullable=True),
        C("updated_at", ZONED),
    ],
    "contracts": [
        C("contract_id"),
        C("account_id"),
        C("contract_number"),
        C("contract_type", enum_type("time_and_materials", "milestone", "retainer")),
        C("status", enum_type("draft", "active", "suspended", "terminated")),
        C("currency"),
        C("start_date", DATE),
        C("end_date", DATE, nullable=True),
        C("cap_amount", decimal_type(14, 2), nullable=True),
        C("cap_period", enum_type("contract", "month")),
        C("retainer_hours_monthly", decimal_type(8, 2), nullable=True),
        C("updated_at", ZONED),
    ],
    "contract_rates": [
        C("rate_id"),
        C("contract_id"),
        C("labor_category"),
        C("hourly_rate", decimal_type(10, 2)),
        C("effective_from", DATE),
        C("effective_to", DATE, nullable=True),
    ],
    "contract_amendments": [
        C("amendment_id"),
        C("contract_id"),
        C("status", enum_type("pending", "approved", "rejected")),
        C("effective_date", DATE),
        C("updated_at", ZONED),
    ],
}

# the ERP database's period calendar, captured by the `erp` connector (PostgreSQL)
ERP_TABLES: dict[str, list[Column]] = {
    "accounting_periods": [
        C("period"),
        C("status"),
        C("closed_at", ZONED, nullable=True),
        C("closed_by", nullable=True),
        C("reopened_at", ZONED, nullable=True),
        C("reopen_reason", nullable=True),
    ],
}

ALL_TABLES = {**PG_TABLES, **MARIA_TABLES, **ERP_TABLES}


def _opt(avro: Any) -> dict[str, Any]:
    return {"type": ["null", avro], "default": None}


PG_SOURCE = {
    "type": "record",
    "name": "Source",
    "namespace": "io.debezium.connector.postgresql",
    "fields": [
        {"name": "version", "type": "string"},
        {"name": "connector", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "ts_ms", "type": "long"},
        {"name": "snapshot", **_opt(enum_type("true", "first", "last", "false", "incremental"))},
        {"name": "db", "type": "string"},
        {"name": "sequence", **_opt("string")},
        {"name": "ts_us", **_opt("long")},
        {"name": "ts_ns", **_opt("long")},
        {"name": "schema", "type": "string"},
        {"name": "table", "type": "string"},
        {"name": "txId", **_opt("long")},
        {"name": "lsn", **_opt("long")},
        {"name": "xmin", **_opt("long")},
    ],
    "connect.version": 1,
    "connect.name": "io.debezium.connector.postgresql.Source",
}

MARIA_SOURCE = {
    "type": "record",
    "name": "Source",
    "namespace": "io.debezium.connector.mariadb",
    "fields": [
        {"name": "version", "type": "string"},
        {"name": "connector", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "ts_ms", "type": "long"},
        {"name": "snapshot", **_opt(enum_type("true", "first", "last", "false", "incremental"))},
        {"name": "db", "type": "string"},
        {"name": "sequence", **_opt("string")},
        {"name": "ts_us", **_opt("long")},
        {"name": "ts_ns", **_opt("long")},
        {"name": "table", **_opt("string")},
        {"name": "server_id", "type": "long"},
        {"name": "gtid", **_opt("string")},
        {"name": "file", "type": "string"},
        {"name": "pos", "type": "long"},
        {"name": "row", "type": "int"},
        {"name": "thread", **_opt("long")},
        {"name": "query", **_opt("string")},
    ],
    "connect.version": 1,
    "connect.name": "io.debezium.connector.mariadb.Source",
}


def is_pg(table: str) -> bool:
    return table in PG_TABLES or table in ERP_TABLES


def tx_marker(
    status: str,
    tx_id: str,
    collections: dict[str, int] | None = None,
    *,
    event_count: int | None = None,
) -> dict[str, Any]:
    """A transaction-topic value: BEGIN (no counts) or END (``collections`` and their sum,
    unless ``event_count`` says otherwise)."""
    if status == "BEGIN" and collections is None:
        return {"status": status, "id": tx_id, "event_count": event_count,
                "data_collections": None, "ts_ms": 1_717_000_000_789}  # fmt: skip
    items = [{"data_collection": c, "event_count": n} for c, n in (collections or {}).items()]
    total = sum(n for n in (collections or {}).values()) if event_count is None else event_count
    return {"status": status, "id": tx_id, "event_count": total, "data_collections": items,
            "ts_ms": 1_717_000_000_789}  # fmt: skip


def tx_block(tx_id: str, total_order: int, data_collection_order: int = 1) -> dict[str, Any]:
    """An envelope's ``transaction`` value."""
    return {"id": tx_id, "total_order": total_order, "data_collection_order": data_collection_order}


def envelope_schema(
    topic: str, columns: list[Column], *, pg: bool, transaction: bool = False
) -> dict[str, Any]:
    """The value schema Debezium registers for ``topic`` (``<prefix>.<schema-or-db>.<table>``);
    with ``transaction``, the optional ``transaction`` block Debezium 3 adds to every
    envelope."""
    extra = [{"name": "transaction", **_opt(TX_BLOCK)}] if transaction else []
    return {
        "type": "record",
        "name": "Envelope",
        "namespace": topic,
        "fields": [
            {
                "name": "before",
                "type": [
                    "null",
                    {
                        "type": "record",
                        "name": "Value",
                        "fields": [c.field() for c in columns],
                        "connect.name": f"{topic}.Value",
                    },
                ],
                "default": None,
            },
            {"name": "after", "type": ["null", "Value"], "default": None},
            {"name": "source", "type": PG_SOURCE if pg else MARIA_SOURCE},
            {"name": "op", "type": "string"},
            {"name": "ts_ms", **_opt("long")},
            {"name": "ts_us", **_opt("long")},
            {"name": "ts_ns", **_opt("long")},
            *extra,
        ],
        "connect.version": 2,
        "connect.name": f"{topic}.Envelope",
    }


def source_block(pg: bool, **overrides: Any) -> dict[str, Any]:
    if pg:
        block: dict[str, Any] = {
            "version": "3.6.1.Final",
            "connector": "postgresql",
            "name": "psa",
            "ts_ms": 1_717_000_000_123,
            "snapshot": "false",
            "db": "psa",
            "sequence": '["100","200"]',
            "ts_us": None,
            "ts_ns": None,
            "schema": "public",
            "table": "t",
            "txId": 777,
            "lsn": 123_456_789,
            "xmin": None,
        }
    else:
        block = {
            "version": "3.6.1.Final",
            "connector": "mariadb",
            "name": "crm",
            "ts_ms": 1_717_000_000_456,
            "snapshot": "false",
            "db": "crm",
            "sequence": None,
            "ts_us": None,
            "ts_ns": None,
            "table": "t",
            "server_id": 1,
            "gtid": "0-1-42",
            "file": "mariadb-bin.000003",
            "pos": 4321,
            "row": 2,
            "thread": 9,
            "query": None,
        }
    block.update(overrides)
    return block


def encode(schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    """Avro binary of ``record`` (no framing)."""
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema, named_schemas={}), record)
    return buf.getvalue()


def framed(schema_id: int, schema: dict[str, Any], record: dict[str, Any]) -> bytes:
    return frame(schema_id, encode(schema, record))


def envelope(
    op: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    pg: bool,
    transaction: dict[str, Any] | None = None,
    **source: Any,
) -> dict[str, Any]:
    """An envelope value; ``transaction`` is written only by a schema that has the field."""
    return {
        "before": before,
        "after": after,
        "source": source_block(pg, **source),
        "op": op,
        "ts_ms": 1_717_000_001_000,
        "ts_us": None,
        "ts_ns": None,
        "transaction": transaction,
    }


# --- typed values <-> wire values ----------------------------------------------------------


def to_wire(avro: Any, value: Any) -> Any:
    """What Debezium writes for a typed value in a column of Avro type ``avro``."""
    if value is None:
        return None
    name = avro.get("connect.name") if isinstance(avro, dict) else None
    if name == "io.debezium.time.ZonedTimestamp":
        return value.isoformat().replace("+00:00", "Z")
    if name == "io.debezium.time.Date":
        return (value - date(1970, 1, 1)).days
    if name == "io.debezium.time.MicroTimestamp":
        return (value - EPOCH) // timedelta(microseconds=1)
    if name == "io.debezium.time.Timestamp":
        return (value - EPOCH) // timedelta(milliseconds=1)
    if name == "io.debezium.time.NanoTimestamp":
        return (value - EPOCH) // timedelta(microseconds=1) * 1000
    if isinstance(avro, dict) and avro.get("connect.type") == "int16" and isinstance(value, bool):
        return int(value)
    return value


def sample_value(column: Column, seed: int) -> Any:
    """A typed value for ``column`` (what the row type should hold after decoding)."""
    avro = column.avro
    name = avro.get("connect.name") if isinstance(avro, dict) else None
    if name == "io.debezium.data.Enum":
        return avro["connect.parameters"]["allowed"].split(",")[seed % 2]
    if name == "org.apache.kafka.connect.data.Decimal":
        scale = avro["scale"]
        return Decimal(seed * 37 + 1).scaleb(-scale) + Decimal(seed)
    if name == "io.debezium.time.ZonedTimestamp":
        return datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC) + timedelta(minutes=seed)
    if name == "io.debezium.time.Date":
        return date(2024, 1, 1) + timedelta(days=seed)
    if avro == "long":
        return 1000 + seed
    if avro == "boolean":
        return seed % 2 == 0
    return f"{column.name}-{seed}-ü✓"


def sample_rows(table: str, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(typed values, wire record) of one row of ``table``."""
    typed: dict[str, Any] = {}
    wire: dict[str, Any] = {}
    for column in ALL_TABLES[table]:
        value = sample_value(column, seed)
        typed[column.name] = value
        wire[column.name] = to_wire(column.avro, value)
    return typed, wire


def topic_of(table: str, prefix: str | None = None) -> str:
    if table in ERP_TABLES:
        return f"{prefix or 'erp'}.public.{table}"
    if is_pg(table):
        return f"{prefix or 'psa'}.public.{table}"
    return f"{prefix or 'crm'}.crm.{table}"
