"""A Kafka producer that never loses a record silently.

Bytewax's ``KafkaSink`` drops failed deliveries (no delivery callback, ``flush()`` result
ignored). :class:`CheckedProducer` uses the idempotent producer (``enable.idempotence``,
``acks=all``), records every delivery report, and :meth:`CheckedProducer.deliver` raises
:class:`~dataflows.errors.DeliveryError` unless every record of the call was acknowledged.
Values and keys are Avro in the Confluent wire format, schemas from ``schemas/``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaException, Message, Producer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from dataflows.errors import DeliveryError
from schemas.registry import key_schema_str, schema_str
from schemas.serdes import avro_serializer, registry_client


@dataclass(frozen=True, slots=True)
class OutRecord:
    topic: str
    key: str | None
    value: dict[str, Any]


class CheckedProducer:
    """Avro-serialising, delivery-checked, idempotent producer for billsync's topics."""

    def __init__(self, bootstrap: str, registry_url: str, *, timeout_s: float = 30.0) -> None:
        self._producer = Producer(
            {
                "bootstrap.servers": bootstrap,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 5,
                "compression.type": "zstd",
                "message.timeout.ms": int(timeout_s * 1000),
            }
        )
        self._registry = registry_client(registry_url)
        self._values: dict[str, AvroSerializer] = {}
        self._keys: dict[str, AvroSerializer] = {}
        self._timeout = timeout_s

    def schema(self, topic: str) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(schema_str(topic))
        return parsed

    def _serializers(self, topic: str) -> tuple[AvroSerializer, AvroSerializer | None]:
        if topic not in self._values:
            self._values[topic] = avro_serializer(self._registry, schema_str(topic))
            key = key_schema_str(topic)
            if key is not None:
                self._keys[topic] = avro_serializer(self._registry, key)
        return self._values[topic], self._keys.get(topic)

    def deliver(self, records: Sequence[OutRecord]) -> None:
        """Produce ``records`` and wait until every one is acknowledged, or raise."""
        failures: list[str] = []

        def on_delivery(err: Any, msg: Message) -> None:
            if err is not None:
                failures.append(f"{msg.topic()}: {err}")

        for r in records:
            try:
                value_ser, key_ser = self._serializers(r.topic)
                value = value_ser(r.value, SerializationContext(r.topic, MessageField.VALUE))
                key = (
                    key_ser(r.key, SerializationContext(r.topic, MessageField.KEY))
                    if key_ser is not None and r.key is not None
                    else None
                )
            except Exception as exc:  # registry unreachable or refusing: not delivered, retried
                raise DeliveryError(
                    f"cannot serialise a record for {r.topic} (schema registry): "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            while True:
                try:
                    self._producer.produce(r.topic, value=value, key=key, on_delivery=on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.1)
                except KafkaException as exc:
                    raise DeliveryError(f"cannot produce to {r.topic}: {exc}") from exc
            self._producer.poll(0)
        remaining = self._producer.flush(self._timeout)
        if remaining or failures:
            raise DeliveryError(
                f"{len(failures)} record(s) not delivered, {remaining} still queued: "
                + "; ".join(failures[:5])
            )

    def close(self) -> None:
        self._producer.flush(self._timeout)
