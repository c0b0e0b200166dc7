"""Raw Kafka I/O of the chaos tests: produce exact bytes, read a topic's raw records, read
``billing.dlq`` the way another team's tool would (confluent-kafka's ``AvroDeserializer``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from billsync.settings import Settings
from schemas.serdes import registry_client

DLQ = "billing.dlq"


def _consumer(settings: Settings) -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": f"chaos-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )


def end_offset(settings: Settings, topic: str, partition: int = 0) -> int:
    c = _consumer(settings)
    try:
        return int(c.get_watermark_offsets(TopicPartition(topic, partition), timeout=15)[1])
    finally:
        c.close()


def raw_records(settings: Settings, topic: str, n: int) -> list[tuple[bytes | None, bytes]]:
    """The first ``n`` records of partition 0 with a value, as bytes (key, value)."""
    c = _consumer(settings)
    out: list[tuple[bytes | None, bytes]] = []
    try:
        c.assign([TopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 30
        while len(out) < n and time.monotonic() < deadline:
            for m in c.consume(100, timeout=1.0):
                value = m.value()
                if m.error() is None and value is not None:
                    out.append((m.key(), value))
    finally:
        c.close()
    assert len(out) >= n, f"{topic} has fewer than {n} records"
    return out[:n]


def produce(settings: Settings, topic: str, key: bytes | None, value: bytes) -> tuple[int, int]:
    """One record, delivery-checked; returns (partition, offset)."""
    delivered: list[tuple[int, int]] = []
    errors: list[str] = []

    def done(err: Any, msg: Any) -> None:
        if err is None:
            delivered.append((msg.partition(), msg.offset()))
        else:
            errors.append(str(err))

    p = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    p.produce(topic, key=key, value=value, on_delivery=done)
    p.flush(30)
    assert delivered, f"not delivered to {topic}: {errors}"
    return delivered[0]


class DlqReader:
    """``billing.dlq`` from a start offset, values decoded with the stock AvroDeserializer."""

    def __init__(self, settings: Settings, start: int) -> None:
        self.values = AvroDeserializer(registry_client(settings.schema_registry_url))
        self.consumer = _consumer(settings)
        self.consumer.assign([TopicPartition(DLQ, 0, start)])
        self.records: list[dict[str, Any]] = []

    def poll(self, seconds: float = 1.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for m in self.consumer.consume(500, timeout=0.2):
                if m.error() is None:
                    ctx = SerializationContext(DLQ, MessageField.VALUE)
                    self.records.append(self.values(m.value(), ctx))

    def at(self, topic: str, partition: int, offset: int) -> dict[str, Any] | None:
        for r in self.records:
            if (r["topic"], r["partition"], r["offset"]) == (topic, partition, offset):
                return r
        return None

    def close(self) -> None:
        self.consumer.close()
