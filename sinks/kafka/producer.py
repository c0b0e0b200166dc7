"""A Kafka producer that never loses a record silently.

Bytewax's ``KafkaSink`` drops failed deliveries (no delivery callback, ``flush()`` result
ignored). :class:`CheckedProducer` uses the idempotent producer (``enable.idempotence``,
``acks=all``), records every delivery report, and :meth:`CheckedProducer.deliver` raises
:class:`~billsync.errors.DeliveryError` unless every record it produced was acknowledged.
Values and keys are Avro in the Confluent wire format, schemas from ``schemas/``.

Two kinds of failure, told apart so that one bad record cannot stop the others:

- **Delivery failures** (the broker or the schema registry is unreachable or refusing, a
  delivery report with an error): :class:`~billsync.errors.DeliveryError`, nothing of the
  call counts as delivered; the caller keeps the records and retries later.
- **One record that cannot be encoded** (:mod:`sinks.kafka.encoding`: the serializer
  failed and fastavro, offline, confirms the record itself is at fault), or that the client
  refuses as larger than ``message.max.bytes``: it is *rejected* — not produced, returned
  by :meth:`CheckedProducer.deliver` — and the other records are delivered. A record the
  offline check finds encodable is never rejected: its serializer failure is a delivery
  failure (the registry), retried.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from billsync.errors import DeliveryError
from schemas.registry import key_schema_str, schema_str
from schemas.serdes import avro_serializer, registry_client
from sinks.kafka.encoding import OutRecord, UnencodableRecord, encoding_problem, key_problem

__all__ = ["CheckedProducer", "OutRecord", "Rejected"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record of a :meth:`CheckedProducer.deliver` call that was not produced, and why."""

    index: int
    reason: str


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

    def _serializers(self, topic: str) -> tuple[AvroSerializer, AvroSerializer | None]:
        if topic not in self._values:
            self._values[topic] = avro_serializer(self._registry, schema_str(topic))
            key = key_schema_str(topic)
            if key is not None:
                self._keys[topic] = avro_serializer(self._registry, key)
        return self._values[topic], self._keys.get(topic)

    def _encode(self, r: OutRecord) -> tuple[bytes | None, bytes | None]:
        """Key and value bytes of ``r``; :class:`UnencodableRecord` when ``r`` is at fault,
        :class:`DeliveryError` when the registry is."""
        problem = key_problem(r)
        if problem is not None:
            raise UnencodableRecord(r.topic, problem)
        try:
            value_ser, key_ser = self._serializers(r.topic)
            value = value_ser(r.value, SerializationContext(r.topic, MessageField.VALUE))
            key = (
                key_ser(r.key, SerializationContext(r.topic, MessageField.KEY))
                if key_ser is not None and r.key is not None
                else None
            )
        except Exception as exc:  # the record or the registry: the offline check tells which
            problem = encoding_problem(r)
            if problem is not None:
                raise UnencodableRecord(r.topic, problem) from exc
            raise DeliveryError(
                f"cannot serialise a record for {r.topic} (schema registry): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        return key, value

    def deliver(self, records: Sequence[OutRecord]) -> tuple[Rejected, ...]:
        """Produce ``records`` in order and wait until every produced one is acknowledged.

        Returns the records that were not produced because they cannot be (by index, with
        the reason); raises :class:`DeliveryError` when a delivery failed — then nothing of
        this call is known to be delivered and the caller retries all of it. Every record
        is encoded before the first is produced, so a registry failure produces nothing."""
        rejected: list[Rejected] = []
        encoded: list[tuple[int, OutRecord, bytes | None, bytes | None]] = []
        for i, r in enumerate(records):
            try:
                key, value = self._encode(r)
            except UnencodableRecord as exc:
                rejected.append(Rejected(i, exc.reason))
                continue
            encoded.append((i, r, key, value))

        failures: list[str] = []

        def on_delivery(index: int, err: Any, msg: Message) -> None:
            if err is not None:
                failures.append(f"{msg.topic()} (record {index}): {err}")

        for i, r, key, value in encoded:
            while True:
                try:
                    self._producer.produce(
                        r.topic, value=value, key=key, on_delivery=partial(on_delivery, i)
                    )
                    break
                except BufferError:
                    self._producer.poll(0.1)
                except KafkaException as exc:
                    if exc.args and _too_large(exc.args[0]):  # this record only, never sent
                        rejected.append(Rejected(i, f"too large for the producer: {exc}"))
                        break
                    raise DeliveryError(f"cannot produce to {r.topic}: {exc}") from exc
            self._producer.poll(0)
        remaining = self._producer.flush(self._timeout)
        if remaining or failures:
            raise DeliveryError(
                f"{len(failures)} record(s) not delivered, {remaining} still queued: "
                + "; ".join(failures[:5])
            )
        return tuple(sorted(rejected, key=lambda rj: rj.index))

    def close(self) -> None:
        self._producer.flush(self._timeout)


def _too_large(err: Any) -> bool:
    return isinstance(err, KafkaError) and err.code() == KafkaError.MSG_SIZE_TOO_LARGE
