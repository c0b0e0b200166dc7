"""Sample values for the unit tests of the CDC edge: typed rows and their wire values, source
blocks and envelopes at fixed positions, transaction markers, and the time and boolean
encodings the contract tables do not use (Debezium writes them for other column types and
connector settings: the edge must read them all).

Schemas and framing are the one Debezium encoder's, :mod:`ops.bench.debezium` (``dbz`` in the
tests): ``dbz.envelope_schema(topic, columns, pg=...)`` of ``dbz.COLUMNS`` or of a changed
column list, ``dbz.framed``, ``dbz.TX_VALUE``, ``dbz.tx_value``, ``dbz.tx_block``. What is
here is what a test needs and the bench does not: fixed, known positions (the bench's grow
like a log's) and values of every column type.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from ops.bench import debezium as dbz

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
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


def tx_marker(
    status: str,
    tx_id: str,
    collections: dict[str, int] | None = None,
    *,
    event_count: int | None = None,
) -> dict[str, Any]:
    """A transaction-topic value at a fixed time (:func:`ops.bench.debezium.tx_value`)."""
    return dbz.tx_value(status, tx_id, collections, ts_ms=1_717_000_000_789,
                        event_count=event_count)  # fmt: skip


def source_block(pg: bool, **overrides: Any) -> dict[str, Any]:
    """A ``source`` value at a fixed position (PostgreSQL's or MariaDB's), ``overrides`` set."""
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
    """What Debezium writes for a typed value in a column of Avro type ``avro``: the encodings
    above, else those of the contract columns (:func:`ops.bench.debezium.to_wire`)."""
    if value is None:
        return None
    name = avro.get("connect.name") if isinstance(avro, dict) else None
    if name == "io.debezium.time.MicroTimestamp":
        return (value - EPOCH) // timedelta(microseconds=1)
    if name == "io.debezium.time.Timestamp":
        return (value - EPOCH) // timedelta(milliseconds=1)
    if name == "io.debezium.time.NanoTimestamp":
        return (value - EPOCH) // timedelta(microseconds=1) * 1000
    return dbz.to_wire(avro, value)


def sample_value(column: dbz.Column, seed: int) -> Any:
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
    for column in dbz.COLUMNS[table]:
        value = sample_value(column, seed)
        typed[column.name] = value
        wire[column.name] = to_wire(column.avro, value)
    return typed, wire
