"""One record that cannot be encoded holds back nothing: quarantined, the others published.

Found in review: the relay published in id order and failed the whole batch; a serialisation
error was reported as a registry ``DeliveryError`` and retried every 5 s for ever, so one
poisoned row stopped every output topic. Real parts: SQLite ERP, the real relay and
``CheckedProducer`` with its real Avro serializers (confluent-kafka's mock registry); only
librdkafka is replaced, by a stand-in that acknowledges what it is given.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import fastavro
import orjson
import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.schema_registry import SchemaRegistryClient
from sqlalchemy import Engine, create_engine, func, insert, select

from billsync.errors import DeliveryError, RecordContext, RecordError
from dataflows.cdc.deadletter import dead_letter
from schemas.registry import load_schema
from sinks.erp import tables as t
from sinks.erp.records import jsonable
from sinks.erp.sink import _ErpPartition
from sinks.erp.tables import billing_outbox, outbox_quarantine
from sinks.kafka import producer as producer_mod
from sinks.kafka import quarantine as qt
from sinks.kafka.encoding import row_problem
from sinks.kafka.outbox import OutboxRelay, enqueue
from sinks.kafka.producer import CheckedProducer
from tests.unit.schemas.test_roundtrip import FULL

NOW = datetime(2025, 4, 1, tzinfo=UTC)
KEY = "timesheet|1234567"


class FakeKafka:
    """librdkafka's Producer, acknowledging every record at flush (``too_large``: refused)."""

    def __init__(self, too_large: Callable[[bytes], bool] = lambda _v: False) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self._acks: list[Callable[[Any, Any], None]] = []
        self._too_large = too_large

    def produce(self, topic: str, *, value: bytes, key: bytes | None, on_delivery: Any) -> None:
        if self._too_large(value):
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        self.sent.append((topic, key, value))
        self._acks.append(on_delivery)

    def poll(self, _timeout: float) -> int:
        return 0

    def flush(self, _timeout: float) -> int:
        for ack in self._acks:
            ack(None, None)
        self._acks.clear()
        return 0


@pytest.fixture
def engine() -> Iterator[Engine]:
    e = create_engine("sqlite://")
    t.metadata.create_all(e)
    yield e
    e.dispose()


def checked_producer(monkeypatch: pytest.MonkeyPatch, kafka: FakeKafka) -> CheckedProducer:
    monkeypatch.setattr(producer_mod, "Producer", lambda _conf: kafka)
    monkeypatch.setattr(
        producer_mod, "registry_client", lambda url: SchemaRegistryClient.new_client({"url": url})
    )
    return CheckedProducer("127.0.0.1:1", "mock://outbox-quarantine", timeout_s=1)


def payload(record: dict[str, Any]) -> str:
    """An outbox payload as the writers store it (bytes as hex, Decimal/datetime as text)."""
    return orjson.dumps(
        {k: (v.hex() if isinstance(v, bytes) else jsonable(v)) for k, v in record.items()}
    ).decode()


def txn(n: int, **changes: Any) -> dict[str, Any]:
    return {
        "topic": "billing.transactions",
        "key": KEY.encode(),
        "payload": payload({**FULL["billing.transactions"], "transaction_id": f"t{n}", **changes}),
        "created_at": NOW,
    }


def put(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with engine.begin() as conn:
        conn.execute(insert(t.billing_outbox), rows)


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        n: int = conn.execute(select(func.count()).select_from(table)).scalar_one()
        return n


def published_ids(kafka: FakeKafka) -> list[str]:
    schema = load_schema("billing.transactions")
    out = []
    for topic, key, value in kafka.sent:
        assert topic == "billing.transactions" and key is not None and value[0] == 0
        out.append(
            fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, schema)["transaction_id"]
        )
    return out


def quarantined(engine: Engine) -> list[qt.Quarantined]:
    with engine.connect() as conn:
        return qt.quarantined(conn)


# (what is wrong, the poisoned row, words of the recorded error)
POISONS: list[tuple[str, dict[str, Any], str]] = [
    ("amount with a third place", txn(2, amount="0.105"), "scale"),
    ("unknown entry_type", txn(2, entry_type="void"), "entry_type"),
    ("required field null", txn(2, source_id=None), "source_id"),
    ("keyed topic without key", {**txn(2), "key": None}, "no key"),
    ("payload not JSON", {**txn(2), "payload": "{not json"}, "JSONDecodeError"),
    ("unknown topic", {**txn(2), "topic": "billing.nope"}, "billing.nope"),
    (
        "dead letter without partition",
        {
            "topic": "billing.dlq",
            "key": None,
            "payload": payload({**FULL["billing.dlq"], "partition": None}),
            "created_at": NOW,
        },
        "partition",
    ),
]


@pytest.mark.parametrize(("what", "poison", "words"), POISONS, ids=[p[0] for p in POISONS])
def test_a_poisoned_row_is_quarantined_and_the_rows_around_it_are_published(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, what: str, poison: dict[str, Any], words: str
) -> None:
    kafka = FakeKafka()
    put(engine, [txn(1), poison, txn(3), txn(4)])
    before = qt.QUARANTINED.labels(topic=poison["topic"], stage="relay")._value.get()

    published = OutboxRelay(engine, checked_producer(monkeypatch, kafka), clock=lambda: NOW).flush()

    assert published == 3
    assert published_ids(kafka) == ["t1", "t3", "t4"]  # outbox order per key, minus the poison
    assert count(engine, t.billing_outbox) == 0
    [q] = quarantined(engine)
    assert (q.stage, q.outbox_id, q.topic, q.key) == ("relay", 2, poison["topic"], poison["key"])
    assert q.payload == poison["payload"] and q.created_at == NOW and q.quarantined_at == NOW
    assert words.lower() in q.error.lower(), q.error
    # prometheus_client exposes no public getter for one child's value
    assert qt.QUARANTINED.labels(topic=poison["topic"], stage="relay")._value.get() == before + 1


def test_a_record_too_large_for_the_producer_is_quarantined_the_others_published(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    kafka = FakeKafka(too_large=lambda value: b"huge" in value)
    put(engine, [txn(1), txn(2, cost_center="huge"), txn(3)])

    assert OutboxRelay(engine, checked_producer(monkeypatch, kafka)).flush() == 2

    assert published_ids(kafka) == ["t1", "t3"]
    [q] = quarantined(engine)
    assert q.stage == "relay" and "too large" in q.error


def test_registry_down_keeps_every_row_and_quarantines_nothing(engine: Engine) -> None:
    """A real delivery failure is not a record's fault: rows kept (bad one too), retried."""
    producer = CheckedProducer("127.0.0.1:1", "http://127.0.0.1:1", timeout_s=1)
    put(engine, [txn(1), txn(2, amount="0.105"), txn(3)])

    with pytest.raises(DeliveryError, match="schema registry"):
        OutboxRelay(engine, producer).flush()

    assert count(engine, t.billing_outbox) == 3
    assert quarantined(engine) == []


def test_enqueue_quarantines_in_the_transaction_and_writes_the_rest(engine: Engine) -> None:
    bad = txn(2, entry_type="void")
    with engine.begin() as conn:
        refused = enqueue(conn, [txn(1), bad, txn(3)], NOW)
    assert refused == ["billing.transactions"]
    with engine.connect() as conn:
        payloads = conn.execute(select(t.billing_outbox.c.payload)).scalars()
        ids = [orjson.loads(p)["transaction_id"] for p in payloads]
    assert ids == ["t1", "t3"]
    [q] = quarantined(engine)
    assert (q.stage, q.outbox_id, q.payload) == ("enqueue", None, bad["payload"])
    assert "entry_type" in q.error


# Dead letters: found in review, a Kafka consumer error with no offset became a dead letter
# with offset None (dataflows/flow.py _consumer_error), which billing.dlq (offset long) could
# not encode; that row then stopped the relay for every topic. The offset is nullable now, and
# the ERP sink checks each letter against the schema in the transaction that writes it.


def consumer_error(**where: Any) -> dict[str, Any]:
    """What ``_consumer_error`` builds from a bytewax ``KafkaError`` (no bytes, maybe no
    partition or offset)."""
    ctx = RecordContext(**where, extra={"kind": "ConsumerError"})
    return dead_letter(
        RecordError("Kafka consumer error: _TRANSPORT", ctx), now_ms=1_743_465_600_000
    )


def table_rows(engine: Engine, table: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(table).order_by(table.c.id)).all())


def test_a_dead_letter_without_offset_is_written_and_published(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    part = _ErpPartition(engine, None, 3600.0, lambda: NOW)
    part.write_batch([consumer_error(topic="psa.public.timesheets", partition=0, offset=None)])
    [row] = table_rows(engine, billing_outbox)
    assert row.topic == "billing.dlq"
    assert row_problem(row.topic, row.key, row.payload) is None
    kafka = FakeKafka()
    assert OutboxRelay(engine, checked_producer(monkeypatch, kafka)).flush() == 1
    [(topic, _key, value)] = kafka.sent
    schema = load_schema("billing.dlq")
    letter = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, schema)
    assert (topic, letter["offset"], letter["error_type"]) == ("billing.dlq", None, "ConsumerError")
    assert quarantined(engine) == []


def test_a_dead_letter_the_schema_cannot_encode_is_quarantined_not_enqueued(
    engine: Engine,
) -> None:
    part = _ErpPartition(engine, None, 3600.0, lambda: NOW)
    good = consumer_error(topic="psa.public.timesheets", partition=1, offset=None)
    bad = consumer_error(topic=None, partition=None, offset=None)  # a client-level error
    part.write_batch([good, bad])
    [row] = table_rows(engine, billing_outbox)
    assert '"partition":1' in row.payload
    [q] = table_rows(engine, outbox_quarantine)
    assert (q.stage, q.topic, q.outbox_id, q.created_at) == ("enqueue", "billing.dlq", None, NOW)
    assert "DeadLetter.topic" in q.error  # fastavro names the first field at fault
