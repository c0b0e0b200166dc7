"""The outbox relay: publishes ``billing_outbox`` rows to Kafka, then deletes them.

Guarantee: at-least-once to Kafka, in outbox order per topic. A row is deleted only after
Kafka acknowledged it (idempotent producer), so a crash at any point loses nothing; a crash
after the acknowledgement and before the delete re-publishes those rows at the next start
(consumers see the same transaction_id / key again — the records are keyed and carry their
deterministic ids, so they deduplicate; ``recon.snapshots`` is compacted by key).
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import Engine, delete, select

from sinks.erp import tables as t
from sinks.kafka.producer import CheckedProducer, OutRecord
from sinks.kafka.revive import revive


class OutboxRelay:
    def __init__(self, engine: Engine, producer: CheckedProducer, *, batch: int = 5_000) -> None:
        self._engine = engine
        self._producer = producer
        self._batch = batch
        self._schemas: dict[str, dict[str, Any]] = {}

    def _schema(self, topic: str) -> dict[str, Any]:
        if topic not in self._schemas:
            self._schemas[topic] = self._producer.schema(topic)
        return self._schemas[topic]

    def flush(self) -> int:
        """Publish every pending row; returns how many were published."""
        total = 0
        o = t.billing_outbox
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(select(o).order_by(o.c.id).limit(self._batch)).all()
            if not rows:
                return total
            records = [
                OutRecord(
                    r.topic,
                    r.key.decode() if r.key is not None else None,
                    revive(self._schema(r.topic), orjson.loads(r.payload)),
                )
                for r in rows
            ]
            self._producer.deliver(records)
            with self._engine.begin() as conn:
                conn.execute(delete(o).where(o.c.id.in_([r.id for r in rows])))
            total += len(rows)
