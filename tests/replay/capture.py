"""A realistic, transactional capture file for the kill-and-replay test (no services).

The bench's synthetic firm (:func:`ops.bench.world.change_stream`: reference rows as
snapshot reads, then timesheets submitted, approved, corrected and deleted, projects put on
hold and released, milestones, cap and rate changes, amendments, each month closed two
months later) encoded as Debezium Avro by the bench's encoder, with what a connector running
with ``provide.transaction.metadata`` adds:

- the changes after the snapshot are grouped into source transactions of 1 to 5 changes of
  one source (PSA, CRM, or the ERP's period calendar); each change carries Debezium's
  ``transaction`` block (id, total_order, data_collection_order), and each transaction is
  framed by a BEGIN and an END record (with its event counts per data collection) on the
  source's ``<prefix>.transaction`` topic;
- PostgreSQL positions carry ``source.sequence`` = ``["<last commit LSN>", "<LSN>"]``, the
  commit LSN of a transaction being the LSN after its last change; MariaDB changes of one
  transaction share its GTID;
- the records are interleaved across topics the way a consumer of several topics reads them
  (per topic in order, topics taking turns in small runs: :func:`interleave`);
- a few poison records (not Avro framing) on the timesheets topic: they dead-letter; no
  transaction counts them.

The capture is written with :class:`dataflows.capture.CaptureWriter`, schemas included.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

from bytewax.connectors.kafka import KafkaSourceMessage

from dataflows.capture import CaptureWriter
from ops.bench.debezium import Encoder, Framed, in_transactions, topic_of
from ops.bench.world import Scale, change_stream

# a firm small enough that most of the records are work, not reference rows
SCALE = Scale(accounts=6, contracts=15, projects=30, employees=60)


def transactional(events: int, seed: int) -> tuple[Encoder, list[Framed]]:
    """The firm's ``events`` changes as framed records, in commit order per source (the
    bench's encoder and grouping: :func:`ops.bench.debezium.in_transactions`)."""
    enc = Encoder(transactions=True)
    stream = change_stream(events, seed=seed, scale=SCALE, month_events=events // 4, closes=True)
    return enc, in_transactions(enc, stream, random.Random(seed))


def interleave(records: list[Framed], rnd: random.Random, window: int = 40) -> Iterator[Framed]:
    """The records as a consumer of all their topics reads them: each topic's records in
    order, the topics of each window of ``window`` records taking turns in random order."""
    for start in range(0, len(records), window):
        chunk = records[start : start + window]
        turn = {topic: rnd.random() for topic in {r.topic for r in chunk}}
        yield from sorted(chunk, key=lambda r: turn[r.topic])  # stable: topic order kept


POISON = 3


def write_capture(path: Path, *, events: int, seed: int) -> int:
    """Write the capture of ``events`` changes (plus their transaction records and
    :data:`POISON` poison records) to ``path``; returns the number of records."""
    enc, framed = transactional(events, seed)
    rnd = random.Random(seed + 2)
    for n in range(POISON):
        at = rnd.randrange(len(framed) // 4, len(framed))  # after the snapshot reads
        framed.insert(at, Framed(topic_of("timesheets"), f"poison-{n}".encode(), b"\x07poison"))
    offsets: dict[str, int] = {}
    with path.open("wb") as fh:
        writer = CaptureWriter(fh, enc.schemas)
        n = 0
        for r in interleave(framed, rnd):
            offset = offsets[r.topic] = offsets.get(r.topic, -1) + 1
            writer.record(KafkaSourceMessage(key=r.key, value=r.value, topic=r.topic,
                                             partition=0, offset=offset))  # fmt: skip
            n += 1
    return n
