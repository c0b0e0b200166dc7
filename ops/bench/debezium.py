"""Debezium-shaped Avro: writer schemas, framed change records of typed rows, transaction
metadata. The one Debezium encoder of the repository: ``billsync bench`` encodes its synthetic
firm with it, and the tests build their Debezium records with it.

What Debezium 3 (``schema.name.adjustment.mode=avro``) writes through a Confluent-compatible
Avro converter: an ``Envelope`` with optional ``before``/``after`` ``Value`` records (the
second a by-name reference), the connector's ``Source`` block, ``op`` and ``ts_ms``;
``connect.name`` annotations on decimals, enums and time types; values framed as magic byte +
4-byte schema id + Avro binary. The benchmarks encode synthetic rows with it so the edge
decodes the same bytes it reads in production.

The building blocks take any columns and any values: :func:`envelope_schema` (a topic and its
:class:`Column` list, :data:`COLUMNS` for the contract tables), :func:`framed`,
:func:`tx_value` and :func:`tx_block`; the unit tests of the CDC edge write with them what
the bench never writes (other column types, fixed positions, poison; their sample values
are ``tests/unit/cdc/samples.py``). :class:`Encoder` frames typed rows of the contract tables
with positions that grow like a real log's.

With ``Encoder(transactions=True)`` it also writes what ``provide.transaction.metadata``
adds: the envelope's ``transaction`` block, PostgreSQL's ``source.sequence`` and the
BEGIN/END records of ``<source>.transaction``, with the ids Debezium 3.6 writes
(PostgreSQL ``"<xid>:<lsn of the record>"``, MariaDB the GTID; ``dataflows/cdc/transaction.py``).
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Any, NamedTuple

from fastavro import parse_schema, schemaless_writer

from billsync.model import ERP_TABLES, PSA_TABLES, Row
from dataflows.cdc.schemas import DictSchemaSource
from dataflows.cdc.wire import frame

EPOCH_DAY = date(1970, 1, 1)


def decimal_type(precision: int, scale: int) -> dict[str, Any]:
    """A ``numeric(precision, scale)`` column as Debezium writes it (``decimal.handling.mode``
    precise)."""
    return {
        "type": "bytes",
        "scale": scale,
        "precision": precision,
        "connect.version": 1,
        "connect.parameters": {"scale": str(scale), "connect.decimal.precision": str(precision)},
        "connect.name": "org.apache.kafka.connect.data.Decimal",
        "logicalType": "decimal",
    }


def enum_type(*allowed: str) -> dict[str, Any]:
    """An enum column: a string with its allowed values."""
    return {
        "type": "string",
        "connect.version": 1,
        "connect.parameters": {"allowed": ",".join(allowed)},
        "connect.name": "io.debezium.data.Enum",
    }


ZONED = {"type": "string", "connect.version": 1, "connect.name": "io.debezium.time.ZonedTimestamp"}
DATE = {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}
S = "string"


def _opt(avro: Any) -> dict[str, Any]:
    return {"type": ["null", avro], "default": None}


class Column(NamedTuple):
    """A column of a ``Value`` record: its Avro type without null, and whether it is nullable."""

    name: str
    avro: Any = S
    nullable: bool = False

    def field(self) -> dict[str, Any]:
        """The column's field of the ``Value`` record."""
        if self.nullable:
            return {"name": self.name, **_opt(self.avro)}
        return {"name": self.name, "type": self.avro}


# table -> [(column, Avro type without null, nullable)], as the local stack's connectors write
_TABLES: dict[str, list[tuple[str, Any, bool]]] = {
    "employees": [
        ("employee_id", S, False), ("name", S, False), ("email", S, False),
        ("labor_category", S, True), ("cost_center", S, False), ("legal_entity", S, False),
        ("active", "boolean", False), ("updated_at", ZONED, False),
    ],
    "projects": [
        ("project_id", S, False), ("code", S, False), ("name", S, False),
        ("account_id", S, True), ("contract_id", S, False), ("status", S, False),
        ("legal_entity", S, False), ("updated_at", ZONED, False),
    ],
    "timesheets": [
        ("timesheet_id", "long", False), ("employee_id", S, False), ("project_id", S, False),
        ("work_date", DATE, False), ("hours", decimal_type(5, 2), False),
        ("billable", "boolean", False), ("status", S, False), ("approved_at", ZONED, True),
        ("notes", S, True), ("updated_at", ZONED, False),
    ],
    "milestones": [
        ("milestone_id", S, False), ("project_id", S, False), ("name", S, False),
        ("amount", decimal_type(14, 2), False), ("due_date", DATE, False), ("status", S, False),
        ("accepted_at", ZONED, True), ("updated_at", ZONED, False),
    ],
    "accounts": [
        ("account_id", S, False), ("name", S, False), ("tax_jurisdiction", S, False),
        ("currency", S, False), ("erp_customer_id", S, True), ("updated_at", ZONED, False),
    ],
    "contracts": [
        ("contract_id", S, False), ("account_id", S, False), ("contract_number", S, False),
        ("contract_type", enum_type("time_and_materials", "milestone", "retainer"), False),
        ("status", enum_type("draft", "active", "suspended", "terminated"), False),
        ("currency", S, False), ("start_date", DATE, False), ("end_date", DATE, True),
        ("cap_amount", decimal_type(14, 2), True),
        ("cap_period", enum_type("contract", "month"), False),
        ("retainer_hours_monthly", decimal_type(8, 2), True), ("updated_at", ZONED, False),
    ],
    "contract_rates": [
        ("rate_id", S, False), ("contract_id", S, False), ("labor_category", S, False),
        ("hourly_rate", decimal_type(10, 2), False), ("effective_from", DATE, False),
        ("effective_to", DATE, True),
    ],
    "contract_amendments": [
        ("amendment_id", S, False), ("contract_id", S, False),
        ("status", enum_type("pending", "approved", "rejected"), False),
        ("effective_date", DATE, False), ("updated_at", ZONED, False),
    ],
    "accounting_periods": [
        ("period", S, False), ("status", S, False), ("closed_at", ZONED, True),
        ("closed_by", S, True), ("reopened_at", ZONED, True), ("reopen_reason", S, True),
    ],
}  # fmt: skip
COLUMNS: dict[str, list[Column]] = {t: [Column(*c) for c in cs] for t, cs in _TABLES.items()}


def _source_schema(pg: bool) -> dict[str, Any]:
    common: list[dict[str, Any]] = [
        {"name": "version", "type": S},
        {"name": "connector", "type": S},
        {"name": "name", "type": S},
        {"name": "ts_ms", "type": "long"},
        {"name": "snapshot", **_opt(enum_type("true", "first", "last", "false", "incremental"))},
        {"name": "db", "type": S},
        {"name": "sequence", **_opt(S)},
        {"name": "ts_us", **_opt("long")},
        {"name": "ts_ns", **_opt("long")},
    ]
    if pg:
        rest: list[dict[str, Any]] = [
            {"name": "schema", "type": S},
            {"name": "table", "type": S},
            {"name": "txId", **_opt("long")},
            {"name": "lsn", **_opt("long")},
            {"name": "xmin", **_opt("long")},
        ]
        ns = "io.debezium.connector.postgresql"
    else:
        rest = [
            {"name": "table", **_opt(S)},
            {"name": "server_id", "type": "long"},
            {"name": "gtid", **_opt(S)},
            {"name": "file", "type": S},
            {"name": "pos", "type": "long"},
            {"name": "row", "type": "int"},
            {"name": "thread", **_opt("long")},
            {"name": "query", **_opt(S)},
        ]
        ns = "io.debezium.connector.mariadb"
    return {
        "type": "record",
        "name": "Source",
        "namespace": ns,
        "fields": common + rest,
        "connect.version": 1,
        "connect.name": f"{ns}.Source",
    }


def source_of(table: str) -> str:
    """The connector (topic prefix and source name) that captures ``table``."""
    if table in PSA_TABLES:
        return "psa"
    return "erp" if table in ERP_TABLES else "crm"


def is_pg(table: str) -> bool:
    """Whether ``table`` is captured from PostgreSQL (PSA, ERP); else MariaDB (CRM)."""
    return source_of(table) != "crm"


def topic_of(table: str) -> str:
    """The Debezium topic of a contract table on the local stack's connectors."""
    source = source_of(table)
    return f"crm.crm.{table}" if source == "crm" else f"{source}.public.{table}"


TX_BLOCK: dict[str, Any] = {
    "type": "record", "name": "block", "namespace": "event",
    "fields": [{"name": "id", "type": S}, {"name": "total_order", "type": "long"},
               {"name": "data_collection_order", "type": "long"}],
    "connect.version": 1, "connect.name": "event.block",
}  # fmt: skip

TX_VALUE: dict[str, Any] = {
    "type": "record", "name": "TransactionMetadataValue",
    "namespace": "io.debezium.connector.common",
    "fields": [
        {"name": "status", "type": S}, {"name": "id", "type": S},
        {"name": "event_count", **_opt("long")},
        {"name": "data_collections", **_opt({"type": "array", "items": ["null", {
            "type": "record", "name": "collection", "namespace": "event",
            "fields": [{"name": "data_collection", "type": S},
                       {"name": "event_count", "type": "long"}],
            "connect.version": 1, "connect.name": "event.collection"}]})},
        {"name": "ts_ms", "type": "long"},
    ],
    "connect.version": 1, "connect.name": "io.debezium.connector.common.TransactionMetadataValue",
}  # fmt: skip


def tx_block(tx_id: str, total_order: int, data_collection_order: int = 1) -> dict[str, Any]:
    """An envelope's ``transaction`` value."""
    return {"id": tx_id, "total_order": total_order, "data_collection_order": data_collection_order}


def tx_value(
    status: str,
    tx_id: str,
    collections: dict[str, int] | None = None,
    *,
    ts_ms: int,
    event_count: int | None = None,
) -> dict[str, Any]:
    """A ``<prefix>.transaction`` value: without ``collections`` a BEGIN's (no counts), with
    them an END's (events per data collection, and their sum unless ``event_count`` says
    otherwise)."""
    if collections is None:
        return {"status": status, "id": tx_id, "event_count": event_count,
                "data_collections": None, "ts_ms": ts_ms}  # fmt: skip
    items = [{"data_collection": c, "event_count": n} for c, n in collections.items()]
    total = sum(collections.values()) if event_count is None else event_count
    return {"status": status, "id": tx_id, "event_count": total, "data_collections": items,
            "ts_ms": ts_ms}  # fmt: skip


def envelope_schema(
    topic: str, columns: list[Column], *, pg: bool, transaction: bool = False
) -> dict[str, Any]:
    """The value schema Debezium registers for ``topic`` (``<prefix>.<schema-or-db>.<table>``)
    with ``columns``; ``pg``: a PostgreSQL source block, else MariaDB's; ``transaction``: with
    the optional block a connector with transaction metadata fills."""
    value = {
        "type": "record",
        "name": "Value",
        "fields": [c.field() for c in columns],
        "connect.name": f"{topic}.Value",
    }
    return {
        "type": "record",
        "name": "Envelope",
        "namespace": topic,
        "fields": [
            {"name": "before", "type": ["null", value], "default": None},
            {"name": "after", "type": ["null", "Value"], "default": None},
            {"name": "source", "type": _source_schema(pg)},
            {"name": "op", "type": S},
            {"name": "ts_ms", **_opt("long")},
            {"name": "ts_us", **_opt("long")},
            {"name": "ts_ns", **_opt("long")},
            *([{"name": "transaction", **_opt(TX_BLOCK)}] if transaction else []),
        ],
        "connect.version": 2,
        "connect.name": f"{topic}.Envelope",
    }


def framed(schema_id: int, schema: Any, record: dict[str, Any]) -> bytes:
    """``record`` in the Confluent wire format: magic byte, ``schema_id``, Avro binary of
    ``schema`` (a writer schema, parsed by fastavro's ``parse_schema`` or not)."""
    buf = io.BytesIO()
    schemaless_writer(buf, schema, record)
    return frame(schema_id, buf.getvalue())


def to_wire(avro: Any, value: Any) -> Any:
    """What Debezium writes for a typed value of a contract column (:data:`COLUMNS`)."""
    if value is None:
        return None
    if avro is ZONED:
        return str(value.isoformat()).replace("+00:00", "Z")
    if avro is DATE:
        return (value - EPOCH_DAY).days
    return value


@dataclass(frozen=True, slots=True)
class Framed:
    """One Kafka record of a Debezium topic: what the source hands the flow."""

    topic: str
    key: bytes
    value: bytes


@dataclass(slots=True)
class _OpenTx:
    """A source transaction between its BEGIN and END."""

    xid: int  # PostgreSQL xid; MariaDB: the GTID sequence number
    events: int = 0
    per_collection: dict[str, int] = field(default_factory=dict)


class Encoder:
    """Frames typed row changes as Debezium Avro values; schema ids 1..9, one per table (and
    10, the transaction-topic value, with ``transactions``).

    Positions grow per source (PostgreSQL LSN/txId of ``psa`` and of ``erp``, MariaDB binlog
    pos of ``crm``), like a real log. Without ``transactions`` (the default) the bytes are
    those of a connector without transaction metadata: no ``transaction`` field, no
    ``sequence``. With it, :meth:`begin` / :meth:`end` (or :meth:`transaction`) frame a
    source's BEGIN and END, and every change between them carries its ``transaction`` block;
    a change outside a transaction carries none (like a snapshot read).
    """

    FIRST_ID = 1
    TX_SCHEMA_ID = FIRST_ID + len(COLUMNS)

    def __init__(self, ts_ms: int = 1_717_000_000_000, *, transactions: bool = False) -> None:
        self.schemas = DictSchemaSource()
        self.transactions = transactions
        self._plans: dict[str, tuple[int, Any]] = {}  # table -> (schema id, parsed schema)
        for i, (table, columns) in enumerate(COLUMNS.items(), start=self.FIRST_ID):
            schema = envelope_schema(topic_of(table), columns, pg=is_pg(table),
                                     transaction=transactions)  # fmt: skip
            self.schemas.add(i, schema)
            self._plans[table] = (i, parse_schema(schema, named_schemas={}))
        self._tx_parsed: Any = None
        if transactions:
            self.schemas.add(self.TX_SCHEMA_ID, TX_VALUE)
            self._tx_parsed = parse_schema(TX_VALUE, named_schemas={})
        self._lsn = {"psa": 10_000, "erp": 10_000}
        self._last_commit = dict(self._lsn)  # PostgreSQL: LSN of the last COMMIT
        self._xid = {"psa": 0, "erp": 0, "crm": 0}
        self._open: dict[str, _OpenTx] = {}
        self._pos = 4
        self.ts_ms = ts_ms

    def _row(self, table: str, row: Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        values = {f.name: getattr(row, f.name) for f in fields(row)}
        return {n: to_wire(t, values.get(n)) for n, t, _ in COLUMNS[table]}

    def _source(self, table: str) -> dict[str, Any]:
        base = {"version": "3.6.1.Final", "ts_ms": self.ts_ms, "snapshot": "false",
                "sequence": None, "ts_us": None, "ts_ns": None, "table": table}  # fmt: skip
        source = source_of(table)
        tx = self._open.get(source)
        if source != "crm":
            lsn = self._lsn[source] = self._lsn[source] + 120
            if self.transactions:
                base["sequence"] = f'["{self._last_commit[source]}","{lsn}"]'
            return {**base, "connector": "postgresql", "name": source, "db": source,
                    "schema": "public", "txId": tx.xid if tx else lsn // 120, "lsn": lsn,
                    "xmin": None}  # fmt: skip
        self._pos += 300
        gtid = f"0-1-{tx.xid if tx else self._pos // 300}"
        return {**base, "connector": "mariadb", "name": "crm", "db": "crm", "server_id": 1,
                "gtid": gtid, "file": "mariadb-bin.000001",
                "pos": self._pos, "row": 0, "thread": 7, "query": None}  # fmt: skip

    def _tx_id(self, source: str, tx: _OpenTx, lsn: int) -> str:
        """The id Debezium writes on a record of ``tx`` (PostgreSQL: with the record's LSN)."""
        return f"0-1-{tx.xid}" if source == "crm" else f"{tx.xid}:{lsn}"

    def _block(self, table: str, source: dict[str, Any]) -> dict[str, Any] | None:
        name = source_of(table)
        tx = self._open.get(name)
        if tx is None:
            return None
        collection = topic_of(table).split(".", 1)[1]
        tx.events += 1
        order = tx.per_collection[collection] = tx.per_collection.get(collection, 0) + 1
        return tx_block(self._tx_id(name, tx, source.get("lsn") or 0), tx.events, order)

    def _marker(self, source: str, record: dict[str, Any]) -> Framed:
        return Framed(f"{source}.transaction", str(record["id"]).encode(),
                      framed(self.TX_SCHEMA_ID, self._tx_parsed, record))  # fmt: skip

    def begin(self, source: str) -> Framed:
        """Open a transaction of ``source`` (psa, crm or erp): its BEGIN record."""
        if not self.transactions:
            raise ValueError("Encoder(transactions=True) writes transaction metadata")
        if source in self._open:
            raise ValueError(f"a transaction of {source} is already open")
        xid = self._xid[source] = self._xid[source] + 1
        tx = self._open[source] = _OpenTx(xid)
        lsn = self._last_commit.get(source, 0)  # PostgreSQL's BEGIN: the last commit's LSN
        return self._marker(source, tx_value("BEGIN", self._tx_id(source, tx, lsn),
                                             ts_ms=self.ts_ms))  # fmt: skip

    def end(self, source: str) -> Framed:
        """Commit the open transaction of ``source``: its END record with the counts."""
        tx = self._open.pop(source)
        lsn = 0
        if source != "crm":
            lsn = self._lsn[source] = self._lsn[source] + 40  # the COMMIT record
            self._last_commit[source] = lsn
        return self._marker(source, tx_value("END", self._tx_id(source, tx, lsn),
                                             tx.per_collection, ts_ms=self.ts_ms))  # fmt: skip

    def transaction(
        self, source: str, changes: Iterable[tuple[str, Row | None, Row | None]]
    ) -> list[Framed]:
        """BEGIN, the framed ``(op, before, after)`` changes, END: one source transaction."""
        return [self.begin(source), *(self.change(*c) for c in changes), self.end(source)]

    def change(self, op: str, before: Row | None, after: Row | None) -> Framed:
        """A framed Debezium record: ``op`` is c, u, d or r."""
        row = after if after is not None else before
        if row is None:
            raise ValueError("a change needs a before or an after image")
        table = row.TABLE
        schema_id, parsed = self._plans[table]
        source = self._source(table)
        record = {
            "before": self._row(table, before),
            "after": self._row(table, after),
            "source": source,
            "op": op,
            "ts_ms": self.ts_ms + 5,
            "ts_us": None,
            "ts_ns": None,
            "transaction": self._block(table, source) if self.transactions else None,
        }
        return Framed(topic_of(table), row.key.encode(), framed(schema_id, parsed, record))


Change = tuple[str, Row | None, Row | None]  # (op, before, after)


def in_transactions(
    encoder: Encoder,
    changes: Iterable[Change],
    rnd: random.Random,
    sizes: Iterable[int] = (1, 1, 2, 3, 4, 5),
) -> list[Framed]:
    """Frame ``changes`` as a connector with transaction metadata writes them: snapshot reads
    (``r``) outside transactions, every other change in a source transaction of a size drawn
    from ``sizes`` (one source per transaction), BEGIN and END records around it. Records
    come in commit order per source (``encoder`` needs ``transactions=True``)."""
    choices = tuple(sizes)
    left: dict[str, int] = {}  # per open transaction, the changes it still takes
    out: list[Framed] = []
    for op, before, after in changes:
        row = after if after is not None else before
        if row is None:
            raise ValueError("a change needs a before or an after image")
        source = source_of(row.TABLE)
        if op != "r" and source not in left:
            out.append(encoder.begin(source))
            left[source] = rnd.choice(choices)
        out.append(encoder.change(op, before, after))
        if source in left:
            left[source] -= 1
            if not left[source]:
                del left[source]
                out.append(encoder.end(source))
    out += [encoder.end(source) for source in sorted(left)]
    return out
