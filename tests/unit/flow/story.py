"""Debezium-shaped Kafka records of typed rows, for driving the dataflow without services."""

from __future__ import annotations

from dataclasses import dataclass, field

from bytewax.connectors.kafka import KafkaSourceMessage

from billsync.model import Row
from dataflows.cdc.schemas import DictSchemaSource
from dataflows.cdc.wire import schema_id_of
from ops.bench.debezium import Encoder

Msg = KafkaSourceMessage[bytes | None, bytes | None]


@dataclass
class Recorder:
    """Row changes as Kafka messages of framed Debezium Avro values (the bench's
    :class:`~ops.bench.debezium.Encoder`: positions growing per source), with offsets per
    topic."""

    encoder: Encoder = field(default_factory=Encoder)
    ids: dict[str, int] = field(default_factory=dict)  # topic -> schema id, of topics written
    offsets: dict[str, int] = field(default_factory=dict)
    messages: list[Msg] = field(default_factory=list)

    @property
    def schemas(self) -> DictSchemaSource:
        return self.encoder.schemas

    def change(self, op: str, before: Row | None, after: Row | None) -> Msg:
        record = self.encoder.change(op, before, after)
        self.ids[record.topic] = schema_id_of(record.value)
        return self.raw(record.topic, record.key, record.value)

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
