"""Is a RUNNING connector still streaming? The age of its newest Debezium heartbeat.

Kafka Connect reports a task ``RUNNING`` while its source connection is gone: after a
MariaDB restart the binlog client re-connects only on its keep-alive interval, and a wedged
stream never reports anything. Debezium writes a heartbeat record to
``__debezium-heartbeat.<topic.prefix>`` every ``heartbeat.interval.ms`` while it is connected —
also when no captured table changes (PostgreSQL: the ``heartbeat.action.query`` writes WAL;
MariaDB: the server's binlog heartbeat events on the replication connection). So the age of
the newest heartbeat says whether changes can be flowing. Measured on the local stack while
no captured table changed: PSA every 10 s, CRM every ~16 s (``connect.keep.alive.interval.ms``
10 s; with the 60 s default CRM heartbeats came about once a minute).

:func:`heartbeat_age` reads the newest record's timestamp (one fetch at the end of the
topic, no consumer group state is written). :func:`stale_after` is the age above which the
connector counts as not streaming: six heartbeat intervals, at least 60 s.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping

from confluent_kafka import Consumer, KafkaException, TopicPartition

HEARTBEAT_TOPIC_PREFIX = "__debezium-heartbeat"  # Debezium's default topic.heartbeat.prefix
MIN_STALE_S = 60.0


def heartbeat_topic(config: Mapping[str, str]) -> str:
    prefix = config.get("topic.heartbeat.prefix", HEARTBEAT_TOPIC_PREFIX)
    return f"{prefix}.{config.get('topic.prefix', '')}"


def stale_after(config: Mapping[str, str]) -> float:
    """Seconds without a heartbeat after which the connector is not streaming."""
    try:
        interval_s = int(config.get("heartbeat.interval.ms", "0")) / 1000
    except ValueError:
        interval_s = 0.0
    return max(MIN_STALE_S, 6 * interval_s)


def describe(config: Mapping[str, str], age: float | None) -> str:
    """``heartbeat 4s ago`` / ``STALE: heartbeat 312s ago`` / ``no heartbeat yet``."""
    if age is None:
        return "no heartbeat yet"
    seen = f"heartbeat {age:.0f}s ago"
    return f"STALE: {seen}" if age > stale_after(config) else seen


def heartbeat_age(bootstrap: str, topic: str, *, timeout_s: float = 10.0) -> float | None:
    """Seconds since the newest record of ``topic`` was written; None if it has none."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"billsync-freshness-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        try:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, 0), timeout=timeout_s, cached=False
            )
        except KafkaException:
            return None  # topic absent: no heartbeat was ever written
        if high <= low:
            return None
        consumer.assign([TopicPartition(topic, 0, high - 1)])
        msg = consumer.poll(timeout_s)
        if msg is None or msg.error() is not None:
            return None
        _, written_ms = msg.timestamp()
        return max(0.0, time.time() - written_ms / 1000)
    finally:
        consumer.close()
