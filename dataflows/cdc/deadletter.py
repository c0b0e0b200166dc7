"""Dead letters: a record the edge could not read, kept as data for ``billing.dlq``.

The dict matches the fields of ``schemas/billing.dlq.avsc``:

| field | type | meaning |
| --- | --- | --- |
| error | string | the message, with where the record came from |
| error_type | string | a stable kind (below), or the error's class name |
| topic, partition | string, int | where the record is in Kafka |
| offset | long or null | its offset; null for a consumer error that names none |
| key, value | bytes or null | the original bytes, untouched (replay reads them again) |
| timestamp | long (ms since epoch, UTC) | when it was dead-lettered (this worker's clock) |

``timestamp`` is not the original record's Kafka timestamp. The ERP sink adds
``received_at`` (its own clock) when it writes the letter to the outbox.

Kinds raised by the edge: BadFraming, UnknownSchemaId, SchemaMismatch, UndecodableRecord,
MissingPrimaryKey, MissingAfter, UnknownOperation, UnknownTable, UnknownTopic,
BadTransactionMarker (a ``<prefix>.transaction`` record that is no BEGIN, or an END whose
counts do not add up).
"""

from __future__ import annotations

import time
from typing import Any

from billsync.errors import RecordError


def dead_letter(error: RecordError, *, now_ms: int | None = None) -> dict[str, Any]:
    """The ``billing.dlq`` value of a record that failed at the edge (or later, with context)."""
    ctx = error.context
    return {
        "error": str(error),
        "error_type": str(ctx.extra.get("kind") or type(error).__name__),
        "topic": ctx.topic,
        "partition": ctx.partition,
        "offset": ctx.offset,
        "key": ctx.key,
        "value": ctx.value,
        "timestamp": now_ms if now_ms is not None else time.time_ns() // 1_000_000,
    }
