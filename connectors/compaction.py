"""The CDC table topics are compacted by the Debezium key, so they can rebuild the flow's state.

With ``cleanup.policy=delete`` and a 168 h retention, a table topic holds only last week's
changes: a flow that lost its recovery store and started again would know only rows changed
in that week, hold everything referring to older rows as unknown, and reverse revenue that
is real. Compacted, a table topic keeps at least the latest record of every key — Debezium
keys a table topic by the row's primary key — so reading it from the beginning yields every
current row (:data:`CDC_TOPIC_CONFIG`).

What a consumer reading a compacted table topic sees of a deleted row. Debezium writes a
delete as two records with the row's key: the ``op=d`` event (``before`` = the row), then a
tombstone (null value). Compaction keeps the latest record per key, so in the compacted part
of the log the ``op=d`` event and every earlier version are gone and only the tombstone is
left; ``delete.retention.ms`` later the tombstone goes too and the key is absent.

- A consumer that rebuilds from the beginning with empty state sees the tombstone or nothing.
  The CDC edge counts a tombstone and changes nothing (``dataflows/cdc``), so the deleted row
  never enters the state — right: a deleted row must be absent.
- A consumer that resumes from a recovery snapshot must see the ``op=d`` event itself: it
  knows the row and only the event removes it. ``min.compaction.lag.ms`` keeps every record
  (the ``op=d`` events with it) uncompacted for that long, so a flow stopped for less than
  :data:`KEEP_MS` (7 days, what the old retention gave) misses no delete. A flow stopped
  longer should be rebuilt (``billsync run --rebuild`` after removing its recovery store,
  ``ops/README.md``), then checked with ``billsync recon audit``.
- ``delete.retention.ms`` (also :data:`KEEP_MS`) keeps tombstones visible that long, which
  is what Kafka promises a reader from offset 0 a consistent view for.

Debezium's other topics keep their own policies: the heartbeat topic
(``__debezium-heartbeat.<prefix>``) is deleted by time (a group of its own in the connector's
``topic.creation.*`` settings, :data:`HEARTBEAT_GROUP`); the MariaDB schema-history topic is
created by Debezium itself (delete, infinite retention, one partition).

The transaction topic ``<prefix>.transaction`` (``provide.transaction.metadata``, BEGIN/END
of every source transaction, ``dataflows/cdc/transaction.py``) falls in the default group
and is compacted like a table topic; ``billsync run`` creates it so too (one partition: its
markers must keep their order) and migrates it, as it is one of the flow's input topics.
Debezium keys a marker by the transaction id its value carries (``TransactionMonitor``:
``prepareTxKey``), so what compaction keeps differs per source:

- PostgreSQL writes ``"<xid>:<lsn of the record>"`` (``PostgresTransactionMonitor``): BEGIN
  and END of one transaction have different keys, no key ever repeats, and compaction keeps
  every marker.
- MariaDB writes the GTID on BEGIN and END alike: past ``min.compaction.lag.ms`` (7 days)
  compaction drops the BEGIN and keeps the END of every transaction.

Either way every marker younger than the compaction lag is there, as are the table records
it counts. The topic grows by one or two small records per source transaction for good
(nothing supersedes them), empty ones included: PostgreSQL announces every heartbeat
transaction (BEGIN + END with 0 events, one pair per ``heartbeat.interval.ms``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from connectors.freshness import heartbeat_topic

KEEP_MS = 7 * 24 * 3600 * 1000  # 7 days, the retention the table topics had before

CDC_TOPIC_CONFIG: Mapping[str, str] = MappingProxyType(
    {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": str(KEEP_MS),
        "delete.retention.ms": str(KEEP_MS),
    }
)
# durations: a larger value an operator set is kept (longer is only safer)
AT_LEAST = frozenset({"min.compaction.lag.ms", "delete.retention.ms"})

DEFAULT_GROUP = "topic.creation.default."
HEARTBEAT_GROUP = "heartbeat"


def config_changes(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The settings of ``wanted`` a topic with configuration ``current`` must change to."""
    out: dict[str, str] = {}
    for key, value in wanted.items():
        have = current.get(key)
        if key in AT_LEAST and have is not None and have.isdigit() and int(have) >= int(value):
            continue
        if have != value:
            out[key] = value
    return out


def creation_problems(config: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(field, problem, fix) for a connector config whose ``topic.creation.*`` settings would
    not create the table topics compacted, or would compact the heartbeat topic."""
    out: list[tuple[str, str, str]] = []
    for key in ("replication.factor", "partitions"):
        field = DEFAULT_GROUP + key
        if not config.get(field, "").strip():
            out.append(
                (
                    field,
                    "Connect creates no topic without it",
                    f'set "{field}": "-1" (broker default)',
                )
            )
    default = {
        k.removeprefix(DEFAULT_GROUP): v for k, v in config.items() if k.startswith(DEFAULT_GROUP)
    }
    for key, value in config_changes(default, CDC_TOPIC_CONFIG).items():
        field = DEFAULT_GROUP + key
        have = default.get(key)
        why = (
            "table topics would lose rows older than their retention"
            if key == "cleanup.policy"
            else f"shorter than {KEEP_MS} ms, a stopped flow could miss deletes"
        )
        out.append(
            (field, f"{have!r}: {why}" if have else f"missing: {why}", f'set "{field}": "{value}"')
        )
    groups = [g.strip() for g in config.get("topic.creation.groups", "").split(",") if g.strip()]
    prefix = f"topic.creation.{HEARTBEAT_GROUP}."
    heartbeat = heartbeat_topic(config)
    include = config.get(prefix + "include", "")
    matches = any(re.fullmatch(p.strip(), heartbeat) for p in include.split(",") if p.strip())
    if (
        HEARTBEAT_GROUP not in groups
        or not matches
        or config.get(prefix + "cleanup.policy") != "delete"
    ):
        out.append(
            (
                "topic.creation.groups",
                f"the heartbeat topic {heartbeat} would be created compacted like a table topic",
                f'add group "{HEARTBEAT_GROUP}" with "{prefix}include": '
                '"__debezium-heartbeat\\\\..*" and "' + prefix + 'cleanup.policy": "delete"',
            )
        )
    return out
