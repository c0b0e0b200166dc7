"""Incremental snapshots (dataflows/journal.py): a base plus a journal resumes exactly.

The billing step snapshots a reference to a base file and journal files of the units applied
since. These tests take a snapshot at the end of every "epoch" of a stream with closes and
source transactions (compactions at closes and by size in between), resume from snapshots
that name journal entries, and check that the resumed step holds the uninterrupted step's
state and emits what it emits for the rest of the stream. They also check what makes the
journal worth having (an epoch's snapshot holds only that epoch's units), that old
generations are deleted only past the retention, that a missing file is a clear error, and
that a journal written under other billing rules re-emits the lines it touched.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import dataflows.billing.engine as engine_module
import dataflows.journal as journal_module
from billsync.errors import StackError
from dataflows.billing.engine import EngineState
from dataflows.emissions import Emission
from dataflows.journal import KEEP_GENERATIONS, Journaled
from dataflows.logic import REEVALUATION, BillingLogic
from dataflows.snapshots import loads
from tests.unit.flow.steps import Item, billing_step, check_started, decoded_stream, feed

EPOCH = 150  # source records per epoch
# compared field by field; books (no __eq__) and finals are checked by what the step emits
COMPARED = [f.name for f in dataclasses.fields(EngineState) if f.name not in ("books", "finals")]


@pytest.fixture(scope="module")
def stream() -> list[Item]:
    return decoded_stream(4000, seed=5, month_events=200)


def _ref(blob: bytes) -> Journaled:
    ref = loads(blob, None)[0]
    assert isinstance(ref, Journaled)
    return ref


def _epochs(logic: BillingLogic, items: list[Item]) -> list[tuple[int, bytes]]:
    """Feed ``items`` in epochs, snapshotting after each: (items fed, snapshot)."""
    snaps = []
    for at in range(0, len(items), EPOCH):
        feed(logic, items[at : at + EPOCH])
        snaps.append((min(at + EPOCH, len(items)), logic.snapshot()))
    return snaps


def test_resuming_from_any_epoch_rebuilds_the_state_and_emits_the_same(
    tmp_path: Path, stream: list[Item]
) -> None:
    segments = tmp_path / "segments"
    first = billing_step(stream, None, segments, journal_min_changes=1000, retain_s=3600)
    snaps = _epochs(first, stream)
    refs = [_ref(blob) for _, blob in snaps]
    assert max(r.generation for r in refs) >= 3  # compacted by closes and by size
    journaled = [i for i, r in enumerate(refs) if r.entries]
    assert len(journaled) >= 5
    for i in journaled[:: max(1, len(journaled) // 4)]:
        cut, blob = snaps[i]
        reference = billing_step(stream, None, None)  # whole snapshots: no journal involved
        feed(reference, stream[:cut])
        resumed = billing_step(stream, blob, segments, journal_min_changes=1000)
        for name in COMPARED:
            assert getattr(resumed.engine.state, name) == getattr(reference.engine.state, name)
        assert len(resumed.engine.finals) == len(reference.engine.finals)
        started, _ = resumed.on_notify()
        check_started(resumed, list(started))
        assert feed(resumed, stream[cut:]) == feed(reference, stream[cut:])
        assert resumed.engine.lines == reference.engine.lines


def test_an_epoch_snapshot_holds_that_epoch_only(tmp_path: Path, stream: list[Item]) -> None:
    segments = tmp_path / "segments"
    logic = billing_step(stream, None, segments, journal_min_changes=10**9)
    cut = len(stream) // 3
    feed(logic, stream[:cut])
    logic.snapshot()  # the base
    before = set(segments.iterdir())
    feed(logic, stream[cut : cut + 5])
    ref = _ref(logic.snapshot())
    written = set(segments.iterdir()) - before
    assert len(written) == 1 and ref.entries == (next(iter(written)).name,)
    base = (segments / ref.base).stat().st_size
    assert next(iter(written)).stat().st_size * 20 < base  # five records, not the state
    assert _ref(logic.snapshot()) == ref  # nothing applied since: nothing written


def test_a_close_compacts(tmp_path: Path, stream: list[Item]) -> None:
    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9)
    gen = _ref(logic.snapshot()).generation
    for item in stream:
        feed(logic, [item])
        if logic.engine.closed_through is not None:  # the close's transaction was applied
            break
    else:
        pytest.fail("the stream closes no period")
    ref = _ref(logic.snapshot())
    assert ref.generation == gen + 1 and ref.entries == ()


@pytest.mark.parametrize("retain_s", [0.0, 3600.0])
def test_old_generations_are_deleted_past_the_retention(
    tmp_path: Path, stream: list[Item], retain_s: float
) -> None:
    logic = billing_step(stream, None, tmp_path, journal_min_changes=1000, retain_s=retain_s)
    refs = [_ref(blob) for _, blob in _epochs(logic, stream)]
    last = refs[-1].generation
    assert last > KEEP_GENERATIONS + 1
    gens = {int(p.name.split("-")[1]) for p in tmp_path.glob("*.seg") if p.name[0] in "bj"}
    if retain_s:
        assert gens == set(range(1, last + 1))
    else:
        assert gens == set(range(last - KEEP_GENERATIONS + 1, last + 1))
    assert (tmp_path / refs[-1].base).exists()


def test_a_missing_journal_file_is_a_clear_error(tmp_path: Path, stream: list[Item]) -> None:
    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9)
    feed(logic, stream[:300])
    logic.snapshot()
    feed(logic, stream[300:320])
    blob = logic.snapshot()
    (missing,) = _ref(blob).entries
    (tmp_path / missing).unlink()
    with pytest.raises(StackError, match=f"{missing} named by the recovery snapshot is missing"):
        billing_step(stream, blob, tmp_path)


def test_a_journal_of_other_rules_re_emits_what_it_touched(
    tmp_path: Path, stream: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9)
    cut = len(stream) * 3 // 4
    feed(logic, stream[:cut])
    logic.snapshot()
    touched = {
        o.update.key
        for o in feed(logic, stream[cut : cut + 100])
        if isinstance(o, Emission) and hasattr(o.update, "key")
    }
    assert touched
    blob = logic.snapshot()
    assert _ref(blob).entries
    upgraded = engine_module.RULES_VERSION + 1  # the next release's rules
    monkeypatch.setattr(journal_module, "RULES_VERSION", upgraded)
    monkeypatch.setattr(engine_module, "RULES_VERSION", upgraded)
    resumed = billing_step(stream, blob, tmp_path)
    started, _ = resumed.on_notify()
    again = {
        o.update.key: o.update.new
        for o in started
        if isinstance(o, Emission)
        and o.source_position == REEVALUATION
        and hasattr(o.update, "key")
    }
    assert touched <= set(again)
    for key in touched:
        assert again[key] == resumed.engine.lines.get(key)
