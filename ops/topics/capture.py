"""``billsync capture``: record the Debezium topics into a capture file (dataflows/capture.py)."""

from __future__ import annotations

from pathlib import Path

from bytewax.connectors.kafka import KafkaSourceMessage
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from rich.progress import Progress

from billsync.settings import Settings
from dataflows.capture import CaptureWriter
from dataflows.cdc.schemas import RegistrySchemaSource
from ops.console import console


def capture(settings: Settings, out: Path, *, max_records: int | None = None) -> int:
    """Read every input topic of the flow (``Settings.input_topics``: the table topics, the
    period calendar and the connectors' transaction topics, so a replay can apply source
    transactions whole) from the beginning to its current end; returns records written."""
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": "billsync-capture",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    meta = consumer.list_topics(timeout=15)
    parts = [
        TopicPartition(topic, p, OFFSET_BEGINNING)
        for topic in settings.input_topics
        if topic in meta.topics
        for p in meta.topics[topic].partitions
    ]
    consumer.assign(parts)
    pending = {(tp.topic, tp.partition) for tp in parts}
    written = 0
    schemas = RegistrySchemaSource(settings.schema_registry_url)
    with out.open("wb") as f, Progress(console=console, transient=True) as progress:
        task = progress.add_task(f"capturing {len(parts)} partitions", total=None)
        writer = CaptureWriter(f, schemas)
        while pending and (max_records is None or written < max_records):
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    pending.discard((msg.topic(), msg.partition()))
                    continue
                raise RuntimeError(f"Kafka error while capturing: {err}")
            writer.record(
                KafkaSourceMessage(
                    key=msg.key(),
                    value=msg.value(),
                    topic=msg.topic(),
                    partition=msg.partition(),
                    offset=msg.offset(),
                    timestamp=msg.timestamp(),
                )
            )
            written += 1
            progress.update(task, advance=1)
    consumer.close()
    schemas.close()
    return written
