"""A realistic, transactional capture file for the kill-and-replay test (no services).

The bench's synthetic firm (:func:`ops.bench.world.change_stream`: reference rows as
snapshot reads, then timesheets submitted, approved, corrected and deleted, projects put on
hold and released, milestones, cap and rate changes, amendments, each month closed two
months later) encoded as Debezium Avro by the bench's encoder, with what a connector running
with ``provide.transaction.metadata`` adds:

- the changes after the snapshot are grouped into source transactions of 1 to 5 changes of
  one source (PSA, CRM, or the ERP's period calendar); each change carries Debezium's
  ``transaction`` block (id, total_order, data_collection_order), and each transaction is
  framed by a BEGIN and an END record (with its event counts per data collection) on the
  source's ``<prefix>.transaction`` topic;
- PostgreSQL positions carry ``source.sequence`` = ``["<last commit LSN>", "<LSN>"]``, the
  commit LSN of a transaction being the LSN after its last change; MariaDB changes of one
  transaction share its GTID;
- the records are interleaved across topics the way a consumer of several topics reads them
  (per topic in order, topics taking turns in small runs: :func:`interleave`);
- a few poison records (not Avro framing) on the timesheets topic: they dead-letter; no
  transaction counts them.

The capture is written with :class:`dataflows.capture.CaptureWriter`, schemas included.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from fastavro import parse_schema, schemaless_writer

from dataflows.capture import CaptureWriter
from dataflows.cdc.wire import frame
from dataflows.model import Row
from ops.bench.debezium import COLUMNS, Encoder, Framed, envelope_schema, source_of, topic_of
from ops.bench.world import Scale, change_stream

# a firm small enough that most of the records are work, not reference rows
SCALE = Scale(accounts=6, contracts=15, projects=30, employees=60)
TX_SCHEMA_ID = 50

TX_BLOCK = {
    "type": "record",
    "name": "block",
    "namespace": "event",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "total_order", "type": "long"},
        {"name": "data_collection_order", "type": "long"},
    ],
    "connect.version": 1,
    "connect.name": "event.block",
}

TX_VALUE = {
    "type": "record",
    "name": "TransactionMetadataValue",
    "namespace": "io.debezium.connector.common",
    "fields": [
        {"name": "status", "type": "string"},
        {"name": "id", "type": "string"},
        {"name": "event_count", "type": ["null", "long"], "default": None},
        {
            "name": "data_collections",
            "type": [
                "null",
                {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "ConnectDefault",
                        "namespace": "io.confluent.connect.avro",
                        "fields": [
                            {"name": "data_collection", "type": "string"},
                            {"name": "event_count", "type": "long"},
                        ],
                    },
                },
            ],
            "default": None,
        },
        {"name": "ts_ms", "type": "long"},
    ],
    "connect.version": 1,
    "connect.name": "io.debezium.connector.common.TransactionMetadataValue",
}


@dataclass
class _Tx:
    """An open source transaction."""

    id: str
    size: int
    events: int = 0
    collections: dict[str, int] = field(default_factory=dict)


def _collection(table: str) -> str:
    """Debezium's data collection of a table: the topic without its prefix."""
    return topic_of(table).split(".", 1)[1]


class TxEncoder(Encoder):
    """The bench's :class:`Encoder`, with transaction blocks, BEGIN/END records and
    PostgreSQL ``sequence`` (last commit LSN, LSN)."""

    def __init__(self) -> None:
        super().__init__()
        for schema_id, table in enumerate(COLUMNS, start=self.FIRST_ID):
            schema = envelope_schema(table)
            schema["fields"].append({"name": "transaction", "type": ["null", TX_BLOCK],
                                     "default": None})  # fmt: skip
            self.schemas.add(schema_id, schema)
            self._plans[table] = (schema_id, parse_schema(schema, named_schemas={}),
                                  COLUMNS[table])  # fmt: skip
        self.schemas.add(TX_SCHEMA_ID, TX_VALUE)
        self._tx_plan = parse_schema(TX_VALUE, named_schemas={})
        self._open: dict[str, _Tx] = {}
        self._last_commit = {"psa": 10_000, "erp": 10_000}
        self._txid = 500
        self._gtid = 0

    def _source(self, table: str) -> dict[str, Any]:
        source = super()._source(table)
        tx = self._open.get(source_of(table))
        if source["connector"] == "postgresql":
            name = source["name"]
            source["sequence"] = orjson.dumps(
                [str(self._last_commit[name]), str(source["lsn"])]
            ).decode()
            if tx is not None:
                source["txId"] = int(tx.id.split(":", 1)[0])
        elif tx is not None:
            source["gtid"] = tx.id
        return source

    def _encode(self, table: str, op: str, before: Row | None, after: Row | None) -> Framed:
        schema_id, parsed, _ = self._plans[table]
        tx = self._open.get(source_of(table))
        block = None
        if tx is not None:
            coll = _collection(table)
            tx.events += 1
            tx.collections[coll] = tx.collections.get(coll, 0) + 1
            block = {"id": tx.id, "total_order": tx.events,
                     "data_collection_order": tx.collections[coll]}  # fmt: skip
        record = {"before": self._row(table, before), "after": self._row(table, after),
                  "source": self._source(table), "op": op, "ts_ms": self.ts_ms + 5,
                  "ts_us": None, "ts_ns": None, "transaction": block}  # fmt: skip
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, record)
        row = after if after is not None else before
        assert row is not None
        return Framed(topic_of(table), row.key.encode(), frame(schema_id, buf.getvalue()))

    def change(self, op: str, before: Row | None, after: Row | None) -> Framed:
        row = after if after is not None else before
        if row is None:
            raise ValueError("a change needs a before or an after image")
        return self._encode(row.TABLE, op, before, after)

    def begin(self, source: str, size: int) -> Framed:
        if source == "crm":
            self._gtid += 1
            tx_id = f"0-1-{self._gtid}"
        else:
            self._txid += 1
            tx_id = f"{self._txid}:{self._lsn[source] + 120}"
        self._open[source] = _Tx(tx_id, size)
        return self._marker(source, "BEGIN", self._open[source])

    def full(self, source: str) -> bool:
        tx = self._open.get(source)
        return tx is not None and tx.events >= tx.size

    def end(self, source: str) -> Framed:
        tx = self._open.pop(source)
        if source in self._lsn:
            self._lsn[source] += 120  # the commit record
            self._last_commit[source] = self._lsn[source]
        return self._marker(source, "END", tx)

    def open_sources(self) -> list[str]:
        return sorted(self._open)

    def _marker(self, source: str, status: str, tx: _Tx) -> Framed:
        end = status == "END"
        collections = [{"data_collection": c, "event_count": n} for c, n in tx.collections.items()]
        value = {"status": status, "id": tx.id, "ts_ms": self.ts_ms,
                 "event_count": tx.events if end else None,
                 "data_collections": collections if end else None}  # fmt: skip
        buf = io.BytesIO()
        schemaless_writer(buf, self._tx_plan, value)
        return Framed(f"{source}.transaction", tx.id.encode(), frame(TX_SCHEMA_ID, buf.getvalue()))


def transactional(events: int, seed: int) -> tuple[TxEncoder, list[Framed]]:
    """The firm's ``events`` changes as framed records, in commit order per source."""
    rnd = random.Random(seed)
    enc = TxEncoder()
    out: list[Framed] = []
    for op, before, after in change_stream(
        events, seed=seed, scale=SCALE, month_events=events // 4, closes=True
    ):
        row = after if after is not None else before
        assert row is not None
        source = source_of(row.TABLE)
        if op != "r" and source not in enc.open_sources():
            out.append(enc.begin(source, rnd.choice((1, 1, 2, 3, 4, 5))))
        out.append(enc.change(op, before, after))
        if enc.full(source):
            out.append(enc.end(source))
    out += [enc.end(source) for source in enc.open_sources()]
    return enc, out


def interleave(records: list[Framed], rnd: random.Random, window: int = 40) -> Iterator[Framed]:
    """The records as a consumer of all their topics reads them: each topic's records in
    order, the topics of each window of ``window`` records taking turns in random order."""
    for start in range(0, len(records), window):
        chunk = records[start : start + window]
        turn = {topic: rnd.random() for topic in {r.topic for r in chunk}}
        yield from sorted(chunk, key=lambda r: turn[r.topic])  # stable: topic order kept


POISON = 3


def write_capture(path: Path, *, events: int, seed: int) -> int:
    """Write the capture of ``events`` changes (plus their transaction records and
    :data:`POISON` poison records) to ``path``; returns the number of records."""
    enc, framed = transactional(events, seed)
    rnd = random.Random(seed + 2)
    for n in range(POISON):
        at = rnd.randrange(len(framed) // 4, len(framed))  # after the snapshot reads
        framed.insert(at, Framed(topic_of("timesheets"), f"poison-{n}".encode(), b"\x07poison"))
    offsets: dict[str, int] = {}
    with path.open("wb") as fh:
        writer = CaptureWriter(fh, enc.schemas)
        n = 0
        for r in interleave(framed, rnd):
            offset = offsets[r.topic] = offsets.get(r.topic, -1) + 1
            writer.record(KafkaSourceMessage(key=r.key, value=r.value, topic=r.topic,
                                             partition=0, offset=offset))  # fmt: skip
            n += 1
    return n
