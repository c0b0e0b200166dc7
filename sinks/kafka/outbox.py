"""The transactional outbox: :func:`enqueue` writes records, :class:`OutboxRelay` publishes them.

Guarantee: at-least-once to Kafka, nothing lost, and one record that cannot be encoded for
its topic holds back nothing. A row is deleted only after Kafka acknowledged it (idempotent
producer), so a crash at any point loses nothing; a crash after the acknowledgement and
before the delete re-publishes those rows at the next start (consumers see the same
transaction_id / key again — the records are keyed and carry their deterministic ids, so
they deduplicate; ``recon.snapshots`` is compacted by key).

Two failures, handled apart:

- **Kafka or the schema registry unavailable** (:class:`~billsync.errors.DeliveryError`):
  the batch's rows stay in the outbox and the caller retries later (the ERP sink: 5 s).
- **A record that cannot be encoded** (:mod:`sinks.kafka.encoding`): it is moved to
  ``outbox_quarantine`` (:mod:`sinks.kafka.quarantine`) and the rest is published. Records
  are checked twice: by :func:`enqueue`, inside the ERP transaction that writes them, so
  such a record never enters ``billing_outbox``; and by the relay, for rows written without
  that check (another writer, an older version) and for records the producer refuses as
  too large.

Ordering: rows are published in outbox (id) order, and records of one key go to one
partition of an idempotent producer, so **per key, consumers see the records in the order
they were written**. A quarantined record is missing from that sequence and does not stop
it: the records of its key written after it are published (holding them back would stop
that item's billing until someone acts, and the ERP tables, the source of truth, hold its
effect anyway). Its ``outbox_id`` (relay stage) or ``created_at`` (enqueue stage) places it
among them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, delete, select

from sinks.erp import tables as t
from sinks.erp.bulk import append
from sinks.kafka import quarantine as qt
from sinks.kafka.encoding import OutRecord, UnencodableRecord, outbox_record, row_problem
from sinks.kafka.producer import CheckedProducer

log = structlog.get_logger(__name__)


def enqueue(conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime) -> list[str]:
    """Write outbox ``rows`` (topic, key bytes, JSON payload, created_at) in the caller's
    transaction; a row that cannot be encoded for its topic goes to ``outbox_quarantine``
    instead (stage ``enqueue``). Returns the topics of the quarantined rows: pass them to
    :func:`sinks.kafka.quarantine.count` once the transaction has committed."""
    good: list[Mapping[str, Any]] = []
    bad: list[dict[str, Any]] = []
    for row in rows:
        problem = row_problem(row["topic"], row["key"], row["payload"])
        if problem is None:
            good.append(row)
        else:
            bad.append({**row, "error": problem})
            log.error(
                "outbox_record_quarantined", stage="enqueue", topic=row["topic"], error=problem
            )
    append(conn, t.billing_outbox, good)
    qt.quarantine(conn, bad, stage="enqueue", now=now)
    return [r["topic"] for r in bad]


class OutboxRelay:
    """Publishes ``billing_outbox`` in id order (guarantee and ordering: module docstring)."""

    def __init__(
        self,
        engine: Engine,
        producer: CheckedProducer,
        *,
        batch: int = 5_000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._producer = producer
        self._batch = batch
        self._clock = clock

    def flush(self) -> int:
        """Publish every pending row; returns how many were published. Raises
        :class:`~billsync.errors.DeliveryError` (rows kept) when Kafka or the registry
        fails; quarantines the rows that cannot be encoded and publishes the others."""
        total = 0
        o = t.billing_outbox
        while True:
            with self._engine.connect() as conn:
                rows = conn.execute(select(o).order_by(o.c.id).limit(self._batch)).all()
            if not rows:
                return total
            refused: dict[int, str] = {}
            ready: list[tuple[int, OutRecord]] = []
            for r in rows:
                try:
                    ready.append((r.id, outbox_record(r.topic, r.key, r.payload)))
                except UnencodableRecord as exc:
                    refused[r.id] = exc.reason
            if ready:
                for rj in self._producer.deliver([rec for _, rec in ready]):
                    refused[ready[rj.index][0]] = rj.reason
            bad = [{**r._mapping, "error": refused[r.id]} for r in rows if r.id in refused]
            with self._engine.begin() as conn:
                qt.quarantine(conn, bad, stage="relay", now=self._clock())
                conn.execute(delete(o).where(o.c.id.in_([r.id for r in rows])))
            qt.count((b["topic"] for b in bad), "relay")
            for b in bad:
                log.error(
                    "outbox_record_quarantined",
                    stage="relay",
                    outbox_id=b["id"],
                    topic=b["topic"],
                    error=b["error"],
                )
            total += len(rows) - len(bad)
