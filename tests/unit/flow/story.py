"""Debezium-shaped Kafka records of typed rows, for driving the dataflow without services."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage

from billsync.model import Row
from dataflows.cdc.schemas import DictSchemaSource
from tests.unit.cdc import debezium_avro as dbz

Msg = KafkaSourceMessage[bytes | None, bytes | None]


@dataclass
class Recorder:
    """Encodes row changes as framed Debezium Avro values, with increasing positions."""

    schemas: DictSchemaSource = field(default_factory=DictSchemaSource)
    ids: dict[str, int] = field(default_factory=dict)
    offsets: dict[str, int] = field(default_factory=dict)
    position: int = 1000
    messages: list[Msg] = field(default_factory=list)

    def _schema(self, table: str) -> tuple[int, dict[str, Any]]:
        topic = dbz.topic_of(table)
        schema = dbz.envelope_schema(topic, dbz.ALL_TABLES[table], pg=dbz.is_pg(table))
        if table not in self.ids:
            self.ids[table] = len(self.ids) + 1
            self.schemas.add(self.ids[table], schema)
        return self.ids[table], schema

    def _wire(self, table: str, row: Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        values = {f.name: getattr(row, f.name) for f in fields(row)}
        return {c.name: dbz.to_wire(c.avro, values.get(c.name)) for c in dbz.ALL_TABLES[table]}

    def change(self, op: str, before: Row | None, after: Row | None) -> Msg:
        row = after if after is not None else before
        assert row is not None
        table = row.TABLE
        schema_id, schema = self._schema(table)
        pg = dbz.is_pg(table)
        self.position += 10
        source = (
            {"lsn": self.position, "txId": self.position, "table": table}
            if pg
            else {"pos": self.position, "row": 0, "table": table}
        )
        record = dbz.envelope(op, self._wire(table, before), self._wire(table, after), pg=pg,
                              **source)  # fmt: skip
        return self.raw(dbz.topic_of(table), row.key.encode(),
                        dbz.framed(schema_id, schema, record))  # fmt: skip

    def raw(self, topic: str, key: bytes | None, value: bytes | None) -> Msg:
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        msg: Msg = KafkaSourceMessage(key=key, value=value, topic=topic, partition=0, offset=offset)
        self.messages.append(msg)
        return msg

    def upsert(self, before: Row | None, after: Row) -> Msg:
        return self.change("u" if before is not None else "c", before, after)

    def delete(self, before: Row) -> Msg:
        msg = self.change("d", before, None)
        self.raw(str(msg.topic), msg.key, None)  # the tombstone Debezium writes after a delete
        return msg
