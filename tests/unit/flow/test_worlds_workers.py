"""The property worlds through the whole flow: 1, 2 and 4 workers and 2 processes of 2 agree.

Issue 13, point 2, on today's flow. The random worlds of the engine's property tests
(:func:`tests.unit.billing.test_properties.histories`: every rule firing, deletes and
re-inserts, a timesheet moving to another project) are encoded as the Debezium Avro records
of the stack's connectors (:class:`ops.bench.debezium.Encoder`) and run through
:func:`dataflows.flow.build_flow` with one input partition per source database, as Kafka
topic-partitions are spread over the workers in production (:mod:`ops.bench.cluster`). With
more than one worker the PSA and CRM records are read and decoded on different workers and
reach the billing step in another interleaving: read 1 to 4 records at a time, 38 of the
40 worlds emitted a different number of line changes on 1, 2 and 4 workers (2026-12-01).
Every configuration must still end with the same line targets — the latest emission per
line, what ``billing_line_state`` holds, as a digest — and those must be the batch target of
the world's final rows (``compute_targets``).

The partitioned billing step (``BILLSYNC_SHARDS``, ARCHITECTURE.md "Partitioning") runs the
same worlds as 2 and 3 shards on 1, 2 and 4 workers, and as 2 shards on 2 processes of 2:
the same batch target, whichever worker each shard and the sequencer land on.

What it leaves out: closes. Where a close falls among another source's changes decides
which items it freezes, so with partitions read freely the runs differ by design
(``bench core --workers`` gates its closes to their place in the stream for that reason);
:mod:`tests.unit.flow.test_worlds_closes` gives each close its place by running the worlds
in phases that resume one recovery store. The ERP writer: the story flow checks it on 1 and
2 workers and 2 processes (``test_flow.py``, ``test_processes.py``). And the worlds lose
something on the way: the stack's tables have NOT NULL columns the pure worlds leave empty;
such a value becomes a neutral one of its type (:func:`storable`), which fires the same kind
of rule (an unknown contract, an unexpected status) or none.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from billsync.model import Row
from dataflows.billing.batch import World, compute_targets
from dataflows.billing.mappings import load_mappings
from ops.bench import cluster
from ops.bench.cluster import lines_digest, run_in_process, run_processes
from ops.bench.debezium import COLUMNS, Encoder, Framed
from tests.unit.billing.test_properties import histories

SEEDS = range(40)  # worlds through 1, 2 and 4 worker threads
PROCESS_SEEDS = range(4)  # of those, also through 2 processes of 2 workers (slower to start)
SHARD_SEEDS = range(20)  # of those, also with the billing step in shards

# a neutral value per Avro type, for a NOT NULL column a world leaves empty
_NEUTRAL: dict[str, Any] = {
    "string": "?",
    "io.debezium.data.Enum": "?",  # Debezium does not check the allowed values; nor do we
    "boolean": False,
    "long": 0,
    "int": 0,
    "io.debezium.time.Date": date(2024, 3, 1),
    "io.debezium.time.ZonedTimestamp": datetime(2024, 3, 1, tzinfo=UTC),
    "org.apache.kafka.connect.data.Decimal": Decimal("0"),
}


def _type(avro: Any) -> str:
    return str(avro.get("connect.name", avro["type"])) if isinstance(avro, dict) else str(avro)


def storable(table: str, row: Row) -> Row:
    """``row`` as the stack's table stores it and the edge decodes it: a neutral value in
    each NOT NULL column it leaves empty, decimals at their column's scale (``4`` hours is
    ``4.00``: equal, but the digest compares representations)."""
    values: dict[str, Any] = {}
    for col in COLUMNS[table]:
        value = getattr(row, col.name)
        if value is None and not col.nullable:
            value = _NEUTRAL[_type(col.avro)]
        if isinstance(value, Decimal):
            value = value.quantize(Decimal(1).scaleb(-int(col.avro["scale"])))
        values[col.name] = value
    return replace(row, **values)


def world(seed: int) -> tuple[Encoder, list[Framed], list[Row]]:
    """A property world as Debezium records, and its final rows."""
    enc = Encoder()
    current: dict[tuple[str, str], Row] = {}
    records: list[Framed] = []
    for event in histories(seed):
        key = (event.table, event.key)
        before = current.get(key)
        if event.row is None:
            if before is None:
                continue
            records.append(enc.change("d", before, None))
            del current[key]
            continue
        after = current[key] = storable(event.table, event.row)
        records.append(enc.change("u" if before is not None else "c", before, after))
    return enc, records, list(current.values())


def expected(final: list[Row]) -> str:
    targets, _ = compute_targets(World.of(final), load_mappings())
    return lines_digest(dict(targets))


@pytest.mark.parametrize("seed", SEEDS)
def test_one_two_and_four_workers_end_in_the_batch_target(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a world is ~50 records: read 1 to 4 at a time, so that the sources' records interleave
    # finely on their way to the billing step (the bench reads 1,000 at a time)
    monkeypatch.setattr(cluster, "BATCH", 1 + seed % 4)
    enc, records, final = world(seed)
    want = expected(final)
    for workers in (1, 2, 4):
        run = run_in_process(enc.schemas, records, workers)
        assert run.digest == want, f"seed {seed}: {workers} worker(s) differ from the batch target"


@pytest.mark.parametrize("seed", PROCESS_SEEDS)
def test_two_processes_of_two_workers_end_in_the_batch_target(seed: int) -> None:
    enc, records, final = world(seed)
    run = run_processes(enc.schemas, records, processes=2, workers=2)
    assert run.digest == expected(final), f"seed {seed}: 2x2 differ from the batch target"


@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize("seed", SHARD_SEEDS)
def test_shards_on_one_two_and_four_workers_end_in_the_batch_target(
    seed: int, shards: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "BATCH", 1 + seed % 4)
    enc, records, final = world(seed)
    want = expected(final)
    for workers in (1, 2, 4):
        run = run_in_process(enc.schemas, records, workers, shards=shards)
        assert run.digest == want, f"seed {seed}: {shards} shards on {workers} worker(s) differ"


@pytest.mark.parametrize("seed", PROCESS_SEEDS[:2])
def test_two_shards_on_two_processes_of_two_workers_end_in_the_batch_target(seed: int) -> None:
    enc, records, final = world(seed)
    run = run_processes(enc.schemas, records, processes=2, workers=2, shards=2)
    assert run.digest == expected(final), f"seed {seed}: 2 shards on 2x2 differ"
