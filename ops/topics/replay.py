"""Replay of dead letters: re-decode each one with today's edge, re-publish those that now pass.

A dead letter keeps the original key and value bytes and where they came from. Replay runs
them through the same :class:`~dataflows.cdc.decoder.ChangeDecoder` the flow uses (schemas from
the registry, so a schema registered since, or a fixed registry, counts). A record that now
decodes is produced again, bytes untouched, to its original topic with the header
``billsync-replay-of: <dlq topic>:<partition>:<offset>``; the running flow reads it like any
other change (the engine is idempotent, so a change it already has is harmless). A record that
still fails is refused, with the error. Replayed dead letters are recorded in the ERP table
``dlq_replays`` after Kafka acknowledged them, so a second replay skips them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Message, Producer
from sqlalchemy import Engine, insert, select

from billsync.errors import DeliveryError, RecordError
from dataflows.cdc.decoder import ChangeDecoder
from ops.reads.queries.tables import dlq_replays, ensure
from ops.reads.topics import TopicRecord

REPLAY_HEADER = "billsync-replay-of"


@dataclass(frozen=True, slots=True)
class Outcome:
    dlq_offset: int
    topic: str
    partition: int | None  # None: a consumer error without a source position
    offset: int | None
    outcome: str  # replayed | would_replay | refused | already_replayed
    error: str | None = None


def replayed_positions(engine: Engine, dlq_topic: str) -> set[tuple[int, int]]:
    ensure(engine)
    r = dlq_replays
    with engine.connect() as conn:
        rows = conn.execute(
            select(r.c.dlq_partition, r.c.dlq_offset).where(r.c.dlq_topic == dlq_topic)
        )
        return {(int(p), int(o)) for p, o in rows}


class Replayer:
    def __init__(self, engine: Engine, decoder: ChangeDecoder, bootstrap: str) -> None:
        self._engine = engine
        self._decoder = decoder
        self._producer = Producer(
            {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"}
        )

    def run(
        self,
        records: Iterable[TopicRecord],
        *,
        offsets: set[int] | None,
        dry_run: bool,
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        done: set[tuple[int, int]] | None = None
        for rec in records:
            if offsets is not None and rec.offset not in offsets:
                continue
            if done is None:
                done = replayed_positions(self._engine, rec.topic)
            outcomes.append(self._one(rec, done, dry_run))
        return outcomes

    def _one(self, rec: TopicRecord, done: set[tuple[int, int]], dry_run: bool) -> Outcome:
        v: dict[str, Any] = rec.value
        if v.get("offset") is None or v.get("partition") is None:  # a consumer error
            return Outcome(
                rec.offset, str(v.get("topic")), None, None, "refused",
                "no source position (a Kafka consumer error): nothing to replay",
            )  # fmt: skip
        where = (str(v["topic"]), int(v["partition"]), int(v["offset"]))
        if (rec.partition, rec.offset) in done:
            return Outcome(rec.offset, *where, "already_replayed")
        try:
            self._decoder.decode(*where, v.get("key"), v.get("value"))
        except RecordError as exc:
            return Outcome(rec.offset, *where, "refused", str(exc))
        if dry_run:
            return Outcome(rec.offset, *where, "would_replay")
        origin = f"{rec.topic}:{rec.partition}:{rec.offset}"
        self._produce(where[0], v.get("key"), v.get("value"), origin)
        with self._engine.begin() as conn:
            conn.execute(
                insert(dlq_replays),
                [
                    {
                        "dlq_topic": rec.topic,
                        "dlq_partition": rec.partition,
                        "dlq_offset": rec.offset,
                        "target_topic": where[0],
                        "replayed_at": datetime.now(UTC),
                    }
                ],
            )
        done.add((rec.partition, rec.offset))
        return Outcome(rec.offset, *where, "replayed")

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, origin: str) -> None:
        errors: list[str] = []

        def on_delivery(err: Any, _msg: Message) -> None:
            if err is not None:
                errors.append(str(err))

        self._producer.produce(
            topic,
            key=key,
            value=value,
            headers=[(REPLAY_HEADER, origin.encode())],
            on_delivery=on_delivery,
        )
        if self._producer.flush(30) or errors:
            raise DeliveryError(f"replay of {origin} to {topic} not acknowledged: {errors}")
