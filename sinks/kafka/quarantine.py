"""The outbox quarantine: records that cannot be encoded for their topic, set aside.

Guarantee: **nothing is dropped, and one bad record holds back nothing.** A record that
cannot be encoded (:mod:`sinks.kafka.encoding`) is moved to the ERP table
``outbox_quarantine`` with its topic, key, payload exactly as written, the error and the
time; every other record is published as usual. It is counted
(``billsync_outbox_quarantined_total{topic,stage}``), logged (``outbox_record_quarantined``)
and listed by ``billsync outbox quarantine``.

Stages (column ``stage``):

- ``enqueue``: refused before it entered ``billing_outbox``, in the ERP transaction that
  wrote it (:func:`sinks.kafka.outbox.enqueue`); ``outbox_id`` is null.
- ``relay``: found by the relay (a row written without that check, or one the broker
  refuses as too large); ``outbox_id`` is the ``billing_outbox`` id it had, which places it
  among the records of its key that were published around it.

A quarantined record is not retried: retrying cannot help until its cause (a code or schema
defect) is fixed. It keeps the JSON the outbox would have published, for diagnosis and for
re-publishing by hand after that fix; no command does that yet.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from prometheus_client import Counter
from sqlalchemy import Connection, insert, select

from sinks.erp import tables as t

Stage = Literal["enqueue", "relay"]

QUARANTINED = Counter(
    "billsync_outbox_quarantined_total",
    "Outbox records that cannot be encoded for their topic, moved to outbox_quarantine",
    ["topic", "stage"],
)


@dataclass(frozen=True, slots=True)
class Quarantined:
    """One ``outbox_quarantine`` row."""

    id: int
    outbox_id: int | None
    stage: str
    topic: str
    key: bytes | None
    payload: str
    error: str
    created_at: datetime
    quarantined_at: datetime

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outbox_id": self.outbox_id,
            "stage": self.stage,
            "topic": self.topic,
            "key": self.key.decode("utf-8", "replace") if self.key is not None else None,
            "error": self.error,
            "payload": self.payload,
            "created_at": self.created_at,
            "quarantined_at": self.quarantined_at,
        }


def quarantine(
    conn: Connection,
    rows: Sequence[Mapping[str, Any]],
    *,
    stage: Stage,
    now: datetime,
) -> None:
    """Write ``rows`` (topic, key, payload, created_at, error; ``id`` for the relay stage) to
    ``outbox_quarantine``, in the caller's transaction. Count them with :func:`count` once
    that transaction has committed."""
    if not rows:
        return
    conn.execute(
        insert(t.outbox_quarantine),
        [
            {
                "outbox_id": r.get("id"),
                "stage": stage,
                "topic": r["topic"],
                "key": r["key"],
                "payload": r["payload"],
                "error": r["error"],
                "created_at": r["created_at"],
                "quarantined_at": now,
            }
            for r in rows
        ],
    )


def count(topics: Iterable[str], stage: Stage) -> None:
    """Count quarantined records (after the commit: a rolled-back write is not counted)."""
    for topic, n in Tally(topics).items():
        QUARANTINED.labels(topic=topic, stage=stage).inc(n)


def quarantined(
    conn: Connection, *, topic: str | None = None, limit: int | None = None
) -> list[Quarantined]:
    """Quarantined records, oldest first (optionally of one topic, at most ``limit``)."""
    q = t.outbox_quarantine
    stmt = select(q).order_by(q.c.id)
    if topic is not None:
        stmt = stmt.where(q.c.topic == topic)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [Quarantined(**row) for row in conn.execute(stmt).mappings()]
