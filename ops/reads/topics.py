"""Read billsync's Avro topics the way an analyst would: confluent-kafka + AvroDeserializer.

:class:`TopicReader` assigns every partition of one topic from the beginning under a unique,
never-committed consumer group (reading changes nobody's offsets), decodes keys and values
with the stock ``AvroDeserializer`` against the registry (writer schema by id from the
Confluent framing), and knows where the topic ended when it was opened, so a listing can stop
there (:meth:`TopicReader.read_to_end`) while a live view keeps polling
(:meth:`TopicReader.poll`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
from confluent_kafka.serialization import MessageField, SerializationContext

from billsync.errors import StackError
from schemas.serdes import avro_deserializer, registry_client


@dataclass(frozen=True, slots=True)
class TopicRecord:
    topic: str
    partition: int
    offset: int
    key: Any
    value: Any
    size: int  # bytes of the encoded value
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class TopicReader:
    def __init__(
        self, bootstrap: str, registry_url: str, topic: str, *, key_avro: bool = True
    ) -> None:
        self.topic = topic
        self._consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"billsync-cli-{uuid.uuid4().hex[:12]}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            }
        )
        registry = registry_client(registry_url)
        self._values = avro_deserializer(registry)
        self._keys = avro_deserializer(registry) if key_avro else None
        try:
            meta = self._consumer.list_topics(topic, timeout=15)
        except KafkaException as exc:
            raise StackError("kafka", f"not reachable at {bootstrap}: {exc}") from None
        info = meta.topics.get(topic)
        if info is None or info.error is not None or not info.partitions:
            self._consumer.close()
            raise StackError(
                "kafka",
                f"topic {topic} does not exist yet: `billsync run` creates it at start",
            )
        self._parts = sorted(info.partitions)
        self._consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in self._parts])
        self.end: dict[int, int] = {}
        for p in self._parts:
            low, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=15, cached=False
            )
            self.end[p] = high if high > low else 0  # 0: nothing to read (empty or expired)
        self._position: dict[int, int] = {p: -1 for p in self._parts}

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> TopicReader:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def poll(self, timeout_s: float = 0.5, max_records: int = 500) -> list[TopicRecord]:
        """What arrived (possibly nothing) within ``timeout_s``."""
        out = []
        for msg in self._consumer.consume(max_records, timeout_s):
            if msg.error() is not None:
                continue  # partition EOF and transient broker errors: librdkafka retries
            partition, offset = int(msg.partition() or 0), int(msg.offset() or 0)
            raw_value = msg.value()
            raw_key = msg.key()
            value = (
                None
                if raw_value is None
                else self._values(raw_value, SerializationContext(self.topic, MessageField.VALUE))
            )
            key: Any = raw_key
            if self._keys is not None and raw_key is not None:
                key = self._keys(raw_key, SerializationContext(self.topic, MessageField.KEY))
            self._position[partition] = offset
            out.append(
                TopicRecord(
                    self.topic,
                    partition,
                    offset,
                    key,
                    value,
                    len(raw_value or b""),
                    _headers(msg.headers()),
                )
            )
        return out

    def at_end(self) -> bool:
        """Every partition read up to where it ended when the reader was opened."""
        return all(self._position[p] + 1 >= self.end[p] for p in self._parts if self.end[p] > 0)

    def read_to_end(self, timeout_s: float = 60.0) -> Iterator[TopicRecord]:
        """Every record up to the end the topic had when opened."""
        waited = 0.0
        while not self.at_end():
            batch = self.poll(0.5)
            if batch:
                waited = 0.0
            else:
                waited += 0.5
                if waited > timeout_s:
                    raise StackError(
                        "kafka", f"{self.topic}: no progress for {timeout_s:.0f}s before its end"
                    )
            yield from batch


def _headers(raw: Any) -> list[tuple[str, bytes]]:
    out = []
    for name, value in raw or []:
        out.append((str(name), value.encode() if isinstance(value, str) else bytes(value or b"")))
    return out
