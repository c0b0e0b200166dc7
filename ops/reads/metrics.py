"""Metrics read from the ERP and Kafka at scrape time (a Prometheus custom collector).

The flow's own counters live where the work happens (``dataflows/flow.py``: events in by
outcome; ``sinks/erp/sink.py``: ledger entries, line-state changes, dead letters, the
commit-to-ERP latency histogram); Bytewax's ``KafkaSource`` exports consumer lag per topic and
partition as ``bytewax_kafka_consumer_lag`` (from librdkafka statistics, every second). This
collector adds what only the ERP or the broker knows, computed when ``/metrics`` is scraped
(one ``GROUP BY`` and two small reads; no work between scrapes):

- ``billsync_exception_queue_lines{state,reason}``: lines held / partially held / in exception;
- ``billsync_dlq_depth``: dead letters in ``billing.dlq`` not replayed yet;
- ``billsync_recon_audit_drift`` and ``billsync_recon_audit_last_run_timestamp_seconds``: the
  last ``billsync recon audit`` (it runs in its own process and writes ``recon_audit_runs``);
- ``billsync_erp_up``: 1 when the ERP answered this scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from confluent_kafka import Consumer, TopicPartition
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from ops.reads.queries import audit_runs, queue
from ops.reads.queries.tables import dlq_replays, ensure
from sinks.erp.records import DLQ_TOPIC


class ErpCollector(Collector):
    def __init__(self, engine: Engine, bootstrap: str, dlq_topic: str = DLQ_TOPIC) -> None:
        self._engine = engine
        self._bootstrap = bootstrap
        self._dlq_topic = dlq_topic
        self._consumer: Consumer | None = None
        self._ensured = False

    def dlq_size(self) -> int | None:
        """Records in the DLQ topic (high - low watermark over its partitions)."""
        try:
            if self._consumer is None:
                self._consumer = Consumer(
                    {"bootstrap.servers": self._bootstrap, "group.id": "billsync-metrics"}
                )
            meta = self._consumer.list_topics(self._dlq_topic, timeout=2)
            info = meta.topics.get(self._dlq_topic)
            if info is None or info.error is not None:
                return 0
            total = 0
            for p in info.partitions:
                low, high = self._consumer.get_watermark_offsets(
                    TopicPartition(self._dlq_topic, p), timeout=2, cached=False
                )
                total += max(0, high - low)
            return total
        except Exception:  # a scrape must answer even when the broker does not
            return None

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("billsync_erp_up", "1 when the ERP answered this scrape")
        try:
            if not self._ensured:
                ensure(self._engine)
                self._ensured = True
            with self._engine.connect() as conn:
                counts = queue.queue_counts(conn)
                last = audit_runs.last(conn)
                r = dlq_replays
                replayed = conn.execute(
                    select(func.count()).where(r.c.dlq_topic == self._dlq_topic)
                ).scalar_one()
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        lines = GaugeMetricFamily(
            "billsync_exception_queue_lines",
            "Lines held, partially held or in exception, by state and reason",
            labels=["state", "reason"],
        )
        for (state, reason), n in sorted(counts.items()):
            lines.add_metric([state, reason], n)
        yield lines
        size = self.dlq_size()
        if size is not None:
            yield GaugeMetricFamily(
                "billsync_dlq_depth",
                "Dead letters in billing.dlq not replayed yet",
                value=max(0, size - int(replayed)),
            )
        if last is not None:
            yield GaugeMetricFamily(
                "billsync_recon_audit_drift",
                "Differences found by the last billsync recon audit",
                value=last.differences,
            )
            yield GaugeMetricFamily(
                "billsync_recon_audit_last_run_timestamp_seconds",
                "When the last billsync recon audit ran (unix time)",
                value=last.run_at.timestamp(),
            )
