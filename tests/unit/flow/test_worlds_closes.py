"""Closed periods through the whole flow on 1, 2 and 4 workers: the property worlds in phases.

Issue 13, point 2, with SPEC 2b. :mod:`tests.unit.flow.test_worlds_workers` leaves closes
out because, read freely from their own partition, a close falls anywhere among the other
sources' changes, and where it falls decides by design which items it freezes. Here each
close has one definite place, as the SPEC asks of a close (it takes effect at one point of
the stream): the world runs in phases, each a run of the flow that resumes the previous
run's recovery store (Bytewax's store, and the billing step's base and journal) and reads
on from where it stopped:

1. the first half of the world's history (PSA and CRM records, interleaved freely);
2. the closes of 2024-02 and 2024-03 (most of the worlds' work dates are in March);
3. the second half (changes of final items' own rows among them, and of the rows that
   final items must not follow);
4. the reopen of 2024-03;
5. the re-snapshot of the reopened period's final items (``op = r``), as
   ``billsync periods reopen`` asks Debezium for;
6. the closes of 2024-03 again and of 2024-04.

The oracle is the pure engine fed the same decoded changes in that order, with the ERP's
record of final items kept as the writer keeps it (``test_periods_properties.Erp``), and
itself checked against the batch target given those final items (``compute_targets``).
After every phase, the flow's line states (the latest emission per line, what
``billing_line_state`` holds: final items' frozen ones included) must equal the oracle's,
whatever the worker count, and when the worker count changes between phases (a rescale
resuming the same store); three of the worlds also on 2 processes of 2 workers. Eight of
them again with the billing step in 2 and 3 shards (``BILLSYNC_SHARDS``: each close a
barrier after which the shards exchange the items it made final), steady on 2 workers and
rescaled, and two as 2 shards on 2 processes of 2.

What it leaves out: a close among changes in flight (its place is the close's own, tested
on the pure engine by ``test_periods_properties``); the ERP writer (the story tests).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from billsync.change import Change
from billsync.model import AccountingPeriod, Row
from dataflows.billing.batch import World, compute_targets
from dataflows.billing.engine import BillingEngine
from dataflows.billing.mappings import load_mappings
from dataflows.cdc.decoder import ChangeDecoder
from ops.bench import cluster
from ops.bench.cluster import CountingSink, lines_digest, run_in_process, run_processes
from ops.bench.debezium import Encoder, Framed
from tests.unit.billing.test_periods_properties import Erp
from tests.unit.billing.test_properties import histories
from tests.unit.flow.test_worlds_workers import storable

# worlds (of the first 72) in which the first closes freeze items and the reopen releases
# some: most property worlds are too sparse to bill before their last changes (checked by
# test_the_phases_freeze_and_release_items)
SEEDS = (0, 2, 4, 9, 14, 26, 31, 32, 37, 39, 48, 49, 50, 57, 66, 71)
SPLIT = 75  # per cent of a world's history before the first closes
PROCESS_SEEDS = 3  # of those, also on 2 processes of 2 (each phase starts a cluster: slower)
# workers per phase: steady, and a rescale at every phase (the store is resumed as it is)
SCHEDULES = {
    "1": (1,) * 6,
    "2": (2,) * 6,
    "4": (4,) * 6,
    "rescale": (1, 4, 2, 1, 2, 4),
}


class Phased:
    """A world's records in phases, with the oracle's line states after each phase."""

    def __init__(self, seed: int) -> None:
        self.enc = Encoder()
        self._decoder = ChangeDecoder(self.enc.schemas)
        self._mappings = load_mappings()
        self._engine = BillingEngine(self._mappings)
        self._erp = Erp({}, {}, {})
        self._rows: dict[tuple[str, str], Row] = {}
        self._offset = 0
        self.phases: list[list[Framed]] = []
        self.digests: list[str] = []
        self.finals: list[int] = []  # final items after each phase

        events = histories(seed)
        half = len(events) * SPLIT // 100
        self._phase(self._history(events[:half]))
        self._phase([self._period("2024-02", "closed"), self._period("2024-03", "closed")])
        self._phase(self._history(events[half:]))
        reopened = [k for k, p in self._erp.final.items() if p == "2024-03"]
        self._phase([self._period("2024-03", "open")])
        self._phase(self._own_rows(reopened))
        self._phase([self._period("2024-03", "closed"), self._period("2024-04", "closed")])

    def _history(self, events: list) -> list[Framed]:  # type: ignore[type-arg]  # test_properties.Event
        out = []
        for event in events:
            key = (event.table, event.key)
            before = self._rows.get(key)
            if event.row is None:
                if before is None:
                    continue
                out.append(self.enc.change("d", before, None))
                del self._rows[key]
                continue
            after = self._rows[key] = storable(event.table, event.row)
            out.append(self.enc.change("u" if before is not None else "c", before, after))
        return out

    def _period(self, period: str, status: str) -> Framed:
        key = ("accounting_periods", period)
        before = self._rows.get(key)
        after = self._rows[key] = AccountingPeriod(period, status)
        return self.enc.change("u" if before is not None else "c", before, after)

    def _own_rows(self, keys: list[tuple[str, str]]) -> list[Framed]:
        out = []
        for source_type, key in keys:
            table = "timesheets" if source_type == "timesheet" else "milestones"
            row = self._rows.get((table, key))
            if row is not None:
                out.append(self.enc.change("r", None, row))
        return out

    def _phase(self, records: list[Framed]) -> None:
        for r in records:
            change = self._decoder.decode(r.topic, 0, self._offset, r.key, r.value)
            self._offset += 1
            assert isinstance(change, Change)
            self._erp.apply(self._engine.apply(change))
        self.phases.append(records)
        self.digests.append(lines_digest(dict(self._erp.lines)))
        self.finals.append(len(self._erp.final))
        self._check_oracle()

    def _check_oracle(self) -> None:
        """The oracle's open lines are the batch target given its final items."""
        if self._engine.finals.waiting():
            return  # a reopened period's re-snapshot is still to come
        erp = self._erp
        frozen = {k: erp.lines[k] for k in erp.final}
        lines, _ = compute_targets(World.of(self._rows.values()), self._mappings, frozen)
        assert self._engine.lines == lines


@pytest.mark.parametrize("schedule", sorted(SCHEDULES))
@pytest.mark.parametrize("seed", SEEDS)
def test_phases_with_closes_end_in_the_oracle_on_any_worker_count(
    seed: int, schedule: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cluster, "BATCH", 1 + seed % 4)  # fine interleaving of the sources
    world = Phased(seed)
    sink = CountingSink()
    records: list[Framed] = []
    for i, (phase, workers) in enumerate(zip(world.phases, SCHEDULES[schedule], strict=True)):
        records += phase
        run = run_in_process(world.enc.schemas, records, workers, recovery=tmp_path, sink=sink)
        assert run.digest == world.digests[i], (
            f"seed {seed}: after phase {i + 1} on {workers} worker(s) the flow's lines differ "
            f"from the oracle's ({world.finals[i]} final items)"
        )


@pytest.mark.parametrize("seed", SEEDS[:PROCESS_SEEDS])
def test_phases_with_closes_on_two_processes_of_two_workers(seed: int, tmp_path: Path) -> None:
    """The same phases on a cluster of 2 processes of 2 workers sharing one recovery store,
    started again for every phase (as ``billsync run --processes 2 --workers 2``)."""
    world = Phased(seed)
    sink = CountingSink()
    records: list[Framed] = []
    for i, phase in enumerate(world.phases):
        records += phase
        run = run_processes(world.enc.schemas, records, 2, 2, recovery=tmp_path, sink=sink)
        assert run.digest == world.digests[i], (
            f"seed {seed}: after phase {i + 1} on 2x2 the flow's lines differ from the oracle's"
        )


@pytest.mark.parametrize("shards", [2, 3])
@pytest.mark.parametrize("schedule", ["2", "rescale"])
@pytest.mark.parametrize("seed", SEEDS[:8])
def test_phases_with_closes_in_shards_end_in_the_oracle(
    seed: int, schedule: str, shards: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The billing step in shards (``BILLSYNC_SHARDS``): every close a barrier after which the
    shards exchange the items it made final, each phase a resumed run of one recovery store."""
    monkeypatch.setattr(cluster, "BATCH", 1 + seed % 4)
    world = Phased(seed)
    sink = CountingSink()
    records: list[Framed] = []
    for i, (phase, workers) in enumerate(zip(world.phases, SCHEDULES[schedule], strict=True)):
        records += phase
        run = run_in_process(world.enc.schemas, records, workers, recovery=tmp_path, sink=sink,
                             shards=shards)  # fmt: skip
        assert run.digest == world.digests[i], (
            f"seed {seed}: after phase {i + 1}, {shards} shards on {workers} worker(s) differ"
        )


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_phases_with_closes_in_two_shards_on_two_processes(seed: int, tmp_path: Path) -> None:
    world = Phased(seed)
    sink = CountingSink()
    records: list[Framed] = []
    for i, phase in enumerate(world.phases):
        records += phase
        run = run_processes(world.enc.schemas, records, 2, 2, recovery=tmp_path, sink=sink,
                            shards=2)  # fmt: skip
        assert run.digest == world.digests[i], f"seed {seed}: phase {i + 1}, 2 shards on 2x2"


def test_the_phases_freeze_and_release_items() -> None:
    """The worlds exercise what the test is for: in each, the first closes make items final
    and the reopen makes some open again; in some, changes of final items' own rows release
    them (SPEC 2b: CHANGED_AFTER_CLOSE)."""
    finals = [Phased(seed).finals for seed in SEEDS]
    assert all(f[1] > 0 and f[3] < f[2] for f in finals), finals
    assert sum(f[2] < f[1] for f in finals) >= len(SEEDS) // 3, finals
