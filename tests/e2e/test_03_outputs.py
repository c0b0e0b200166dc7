"""e2e 03 — what analysts and finance read from Kafka (issue 5 "Done when", SPEC 3 and 4).

Why it exists: the topics are an interface to other teams' tools, so the test reads them the
way those tools would — a consumer written only with confluent-kafka's ``AvroDeserializer``
and ``SchemaRegistryClient`` (no billsync code on the read side) — while the real flow runs:

- ``billing.transactions``: the story's items net to their targets (deduplicated by
  transaction_id: the outbox relay is at-least-once);
- ``billing.exceptions``: the on-hold line's ``entered`` and, after the project is
  activated, its ``released`` event;
- ``recon.snapshots``: the latest value per ``project_id|period`` of the story's projects
  equals the figures recomputed from ``billing_line_state`` and the ledger
  (``sinks.erp.recon.figures``);
- ``billing.dlq``: garbage bytes produced onto ``psa.public.timesheets`` arrive with their
  original bytes, topic, partition and offset, and a later change is still billed.

The output topics are shared by every flow run (each test's flow republishes the seed's
transactions), so the consumer starts at the end offsets taken before this test's flow
starts (a unique group id, manual assignment) and filters by the test's ids.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from decimal import Decimal
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from sqlalchemy import select, union

from billsync.settings import Settings
from schemas.serdes import registry_client
from sinks.erp import tables as erp_tables
from sinks.erp.recon import figures
from tests.e2e.harness import Erp, Flow, Sources
from tests.e2e.story import Story

OUT_TOPICS = ("billing.transactions", "billing.exceptions", "recon.snapshots", "billing.dlq")
SOURCE_TOPIC = "psa.public.timesheets"
D = Decimal


class TopicReader:
    """Reads the four topics from given offsets; keeps every decoded record."""

    def __init__(self, settings: Settings, start: dict[str, int]) -> None:
        registry = registry_client(settings.schema_registry_url)
        self.values = AvroDeserializer(registry)
        self.keys = AvroDeserializer(registry)
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka_bootstrap,
                "group.id": f"e2e-outputs-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign([TopicPartition(t, 0, off) for t, off in start.items()])
        self.records: dict[str, list[tuple[Any, dict[str, Any]]]] = {t: [] for t in start}

    def poll(self, seconds: float = 1.0) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            msgs = self.consumer.consume(1000, timeout=0.2)
            for m in msgs:
                if m.error():
                    continue
                topic = m.topic()
                key = m.key()
                if key is not None and topic != "billing.dlq":
                    key = self.keys(key, SerializationContext(topic, MessageField.KEY))
                value = self.values(m.value(), SerializationContext(topic, MessageField.VALUE))
                self.records[topic].append((key, value))

    def close(self) -> None:
        self.consumer.close()


def end_offsets(settings: Settings, topics: tuple[str, ...]) -> dict[str, int]:
    c = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": "e2e-offsets"})
    try:
        return {t: c.get_watermark_offsets(TopicPartition(t, 0), timeout=15)[1] for t in topics}
    finally:
        c.close()


def produce_poison(settings: Settings, payload: bytes) -> tuple[int, int]:
    """Garbage bytes onto a source topic; returns (partition, offset)."""
    delivered: list[tuple[int, int]] = []
    p = Producer({"bootstrap.servers": settings.kafka_bootstrap})
    p.produce(
        SOURCE_TOPIC,
        key=b"not-avro",
        value=payload,
        on_delivery=lambda err, msg: (
            delivered.append((msg.partition(), msg.offset())) if err is None else None
        ),
    )
    p.flush(30)
    assert delivered, "the poison record was not delivered"
    return delivered[0]


def until(check: Callable[[], str | None], reader: TopicReader, flow: Flow, timeout: float) -> None:
    """Poll the topics until ``check`` returns None (nothing missing) or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        reader.poll(1.0)
        missing = check()
        if missing is None:
            return
        flow.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"topics incomplete after {timeout:.0f}s: {missing}")


def test_topics_read_with_stock_avro_deserializer(
    stack: Settings,
    make_flow: Callable[[], Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
) -> None:
    story = Story(sources, prefix)
    start = end_offsets(stack, OUT_TOPICS)
    flow = make_flow()
    flow.start()
    erp = erp_of(flow)
    erp.wait_tables(flow)
    reader = TopicReader(stack, start)
    try:
        for name, step in story.steps[:-1]:
            step()
            erp.wait_lines(story.expect, flow=flow, what=f"after step {name!r}")
        poison = f"garbage from {prefix}".encode()
        partition, offset = produce_poison(stack, poison)
        story.release_and_cancel()  # a change after the poison: the flow must go on
        erp.wait_lines(story.expect, flow=flow, what="the change after the poison record")

        ids = set(story.item_ids())
        hold_id = str(story.ts(5))
        targets = {k[1]: v for k, v in story.targets().items()}

        # Other flows (other tests, a developer's `billsync run`) read the same source topics
        # and publish to the same output topics, with the same deterministic transaction ids
        # for these items. This flow's records are the ones whose (id, created_at) /
        # occurred_at / as_of equal what this flow wrote into its own ERP schema.
        ledger = erp.ledger(ids)
        posted = {(e["transaction_id"], e["created_at"]): e for es in ledger.values() for e in es}

        def transactions_net() -> str | None:
            seen: dict[tuple[str, Any], dict[str, Any]] = {}
            for _k, v in reader.records["billing.transactions"]:
                if (v["transaction_id"], v["created_at"]) in posted:
                    seen[(v["transaction_id"], v["created_at"])] = v  # at-least-once: dedupe
            missing = set(posted) - set(seen)
            if missing:
                return f"{len(missing)} of {len(posted)} ERP transactions not on the topic yet"
            sums = {i: (D("0.00"), D("0.00")) for i in ids}
            for v in seen.values():
                e = posted[(v["transaction_id"], v["created_at"])]
                assert (v["amount"], v["tax_amount"], v["entry_type"]) == (
                    e["amount"],
                    e["tax_amount"],
                    e["entry_type"],
                )
                a, t = sums[v["source_id"]]
                sums[v["source_id"]] = (a + v["amount"], t + v["tax_amount"])
            wrong = {i: (sums[i], targets[i]) for i in ids if sums[i] != targets[i]}
            return f"transactions differ: {wrong}" if wrong else None

        released_at = erp.lines([story.tkey(5)])[story.tkey(5)]["updated_at"]

        def hold_and_release() -> str | None:
            events = [
                (v["event"], v["occurred_at"])
                for _k, v in reader.records["billing.exceptions"]
                if v["source_id"] == hold_id
            ]
            entered = any(e == "entered" for e, _ in events)
            released = ("released", released_at) in events
            ok = entered and released
            return None if ok else f"exception events of {hold_id}: {events}"

        def dead_letter() -> str | None:
            for _k, v in reader.records["billing.dlq"]:
                if v["value"] == poison:
                    assert (v["topic"], v["partition"], v["offset"]) == (
                        SOURCE_TOPIC,
                        partition,
                        offset,
                    )
                    assert v["key"] == b"not-avro"
                    return None
            return "the poison record is not in billing.dlq"

        until(transactions_net, reader, flow, 120)
        until(hold_and_release, reader, flow, 60)
        until(dead_letter, reader, flow, 60)

        # recon.snapshots: the latest value per key of the story's projects = recomputed figures
        s, tx = erp_tables.billing_line_state, erp_tables.erp_billing_transactions
        keys_q = union(
            select(s.c.project_id, s.c.period).where(s.c.project_id.like(f"{prefix}%")),
            select(tx.c.project_id, tx.c.period).where(tx.c.project_id.like(f"{prefix}%")),
        )

        r = erp_tables.recon_snapshots

        def recon_matches() -> str | None:
            # this flow's latest snapshot per key: the topic record with the as_of of the row
            # the flow keeps in its ERP table recon_snapshots
            latest: dict[tuple[str, Any], dict[str, Any]] = {}
            for k, v in reader.records["recon.snapshots"]:
                if isinstance(k, str) and k.startswith(prefix):
                    latest[(k, v["as_of"])] = v
            with erp.engine.connect() as conn:
                keys = [(p, per) for p, per in conn.execute(keys_q) if per is not None]
                want = {f"{p}|{per}": asdict(figures(conn, p, per)) for p, per in keys}
                as_of = {
                    f"{row.project_id}|{row.period}": row.as_of
                    for row in conn.execute(
                        select(r.c.project_id, r.c.period, r.c.as_of).where(
                            r.c.project_id.like(f"{prefix}%")
                        )
                    )
                }
            wrong = []
            for key, fig in want.items():
                have = latest.get((key, as_of.get(key)))
                if have is None or any(have[f] != v for f, v in fig.items()):
                    wrong.append(f"{key}: topic {have}, figures {fig}")
            return "\n".join(wrong) if wrong else None

        until(recon_matches, reader, flow, 60)
    finally:
        reader.close()
