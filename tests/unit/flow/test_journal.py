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
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pytest

import dataflows.billing.engine as engine_module
import dataflows.journal as journal_module
from billsync.errors import StackError
from dataflows.billing.engine import EngineState
from dataflows.emissions import Emission
from dataflows.journal import KEEP_GENERATIONS, Journal, Journaled, fork_supported
from dataflows.logic import REEVALUATION, BillingLogic
from dataflows.snapshots import loads
from tests.unit.flow.steps import Item, billing_step, check_started, decoded_stream, feed

EPOCH = 150  # source records per epoch
# compared field by field; books (no __eq__) and finals are checked by what the step emits
COMPARED = [f.name for f in dataclasses.fields(EngineState) if f.name not in ("books", "finals")]


@pytest.fixture(scope="module")
def stream() -> list[Item]:
    return decoded_stream(4000, seed=5, month_events=200)


def _holds_a_close(ref: Journaled, segments: Path) -> bool:
    return any(
        c.table == "accounting_periods"
        for name in ref.entries
        for changes, _, _ in loads((segments / name).read_bytes(), None)
        for c in changes
    )


def _ref(blob: bytes) -> Journaled:
    ref = loads(blob, None)[0]
    assert isinstance(ref, Journaled)
    return ref


def _journal(logic: BillingLogic) -> Journal:
    journal = logic._journal
    assert journal is not None
    return journal


def _epochs(
    logic: BillingLogic, items: list[Item], *, wait: bool = False
) -> list[tuple[int, bytes]]:
    """Feed ``items`` in epochs, snapshotting after each: (items fed, snapshot). ``wait``: let
    a forked compaction finish after each snapshot (the next one then adopts its base)."""
    snaps = []
    for at in range(0, len(items), EPOCH):
        feed(logic, items[at : at + EPOCH])
        snaps.append((min(at + EPOCH, len(items)), logic.snapshot()))
        if wait:
            _journal(logic).wait()
    return snaps


# how the bases are written: in the flow's thread; forked, each waited for before the next
# epoch (every snapshot after a compaction names the new base); forked, never waited for
# (whatever the children's timing, snapshots name complete files)
MODES = {"inline": ("inline", False), "fork-waited": ("fork", True), "fork": ("fork", False)}
needs_fork = pytest.mark.skipif(not fork_supported(), reason="no copy-on-write fork here")


@pytest.mark.parametrize("mode", list(MODES))
def test_resuming_from_any_epoch_rebuilds_the_state_and_emits_the_same(
    tmp_path: Path, stream: list[Item], mode: str
) -> None:
    compaction, wait = MODES[mode]
    if compaction == "fork" and not fork_supported():
        pytest.skip("no copy-on-write fork here")
    segments = tmp_path / "segments"
    first = billing_step(stream, None, segments, journal_min_changes=1000, retain_s=3600,
                         compaction=compaction)  # fmt: skip
    snaps = _epochs(first, stream, wait=wait)
    _journal(first).wait()
    refs = [_ref(blob) for _, blob in snaps]
    assert max(r.generation for r in refs) >= (3 if wait or mode == "inline" else 2)
    journaled = [i for i, r in enumerate(refs) if r.entries]
    assert len(journaled) >= 5
    if compaction == "fork":  # journals that hold a close, while its base was being written
        with_close = [i for i in journaled if _holds_a_close(refs[i], segments)]
        assert with_close
        journaled = sorted({*journaled[:: max(1, len(journaled) // 4)], *with_close[:3]})
    else:
        journaled = journaled[:: max(1, len(journaled) // 4)]
    for i in journaled:
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


def _in_the_child(monkeypatch: pytest.MonkeyPatch, before: Callable[[], None]) -> None:
    """Run ``before`` in a forked child before it pickles its base (not in this process)."""
    parent = os.getpid()
    real_dump = journal_module.dump

    def dump(state: object, store: object, file: BinaryIO) -> None:
        if os.getpid() != parent and isinstance(state, EngineState):
            before()
        real_dump(state, store, file)  # type: ignore[arg-type]

    monkeypatch.setattr(journal_module, "dump", dump)


def _to_first_close(logic: BillingLogic, stream: list[Item]) -> int:
    """Feed ``stream`` up to its first close's transaction; the items fed."""
    for n, item in enumerate(stream, 1):
        feed(logic, [item])
        if logic.engine.closed_through is not None:  # the close's transaction was applied
            return n
    pytest.fail("the stream closes no period")


def test_a_close_compacts(tmp_path: Path, stream: list[Item]) -> None:
    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9)
    gen = _ref(logic.snapshot()).generation
    _to_first_close(logic, stream)
    ref = _ref(logic.snapshot())
    assert ref.generation == gen + 1 and ref.entries == ()


@needs_fork
def test_a_forked_compaction_is_adopted_once_its_child_has_written_the_base(
    tmp_path: Path, stream: list[Item]
) -> None:
    """The close's epoch names the old base and a journal holding the close; the first
    snapshot after the child exited names the child's base and the journal since the fork."""
    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9, compaction="fork")
    journal = _journal(logic)
    gen = _ref(logic.snapshot()).generation  # the first base: inline
    assert not journal.compacting
    cut = _to_first_close(logic, stream)
    during = _ref(logic.snapshot())
    assert during.generation == gen and _holds_a_close(during, tmp_path)
    assert journal.compacting and journal.last_pause_s < 1.0
    feed(logic, stream[cut : cut + 40])
    still = _ref(logic.snapshot())  # the child may or may not have finished by now
    journal.wait()
    feed(logic, stream[cut + 40 : cut + 80])
    after = _ref(logic.snapshot())
    assert not journal.compacting
    assert after.generation == gen + 1 and after.base.startswith(f"base-{gen + 1:010d}-")
    assert (tmp_path / after.base).exists() and not _holds_a_close(after, tmp_path)
    assert len(after.entries) == 2  # the epochs of `still` and `after`, adopted at either
    assert still.generation in (gen, gen + 1)
    # the adopted base and its journal rebuild the uninterrupted state
    reference = billing_step(stream, None, None)
    feed(reference, stream[: cut + 80])
    resumed = billing_step(stream, logic.snapshot(), tmp_path)
    for name in COMPARED:
        assert getattr(resumed.engine.state, name) == getattr(reference.engine.state, name)


@needs_fork
def test_a_fork_refused_by_the_kernel_writes_the_base_inline(
    tmp_path: Path, stream: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9, compaction="fork")
    gen = _ref(logic.snapshot()).generation
    monkeypatch.setattr(journal_module.os, "fork", no_fork)
    _to_first_close(logic, stream)
    ref = _ref(logic.snapshot())
    assert ref.generation == gen + 1 and ref.entries == () and not _journal(logic).compacting


@needs_fork
@pytest.mark.parametrize("failure", ["error", "timeout"])
def test_a_failed_child_leaves_the_old_base_and_the_next_base_is_written_inline(
    tmp_path: Path, stream: list[Item], monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    def fail() -> None:
        if failure == "error":
            raise OSError("disk full (simulated)")
        time.sleep(60)  # killed before

    _in_the_child(monkeypatch, fail)
    if failure == "timeout":
        monkeypatch.setattr(journal_module, "FORK_TIMEOUT_S", 0.5)
    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9, compaction="fork")
    journal = _journal(logic)
    gen = _ref(logic.snapshot()).generation
    _to_first_close(logic, stream)
    logic.snapshot()
    assert journal.compacting
    if failure == "timeout":
        time.sleep(0.6)
        assert _ref(logic.snapshot()).generation == gen + 1  # killed: written inline now
    else:
        journal.wait()  # exited 1: nothing adopted
        assert not journal.compacting and _ref(logic.snapshot()).generation == gen + 1
    ref = journal.ref
    assert ref is not None and ref.entries == () and not journal.compacting
    assert not list(tmp_path.glob("*.tmp"))  # the child's half-written file is gone


@needs_fork
def test_a_journal_holding_a_close_is_refused_under_other_rules_and_compacts_under_ours(
    tmp_path: Path, stream: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9, compaction="fork")
    logic.snapshot()
    _to_first_close(logic, stream)
    blob = logic.snapshot()  # names the old base and the journal holding the close
    assert _holds_a_close(_ref(blob), tmp_path)
    _journal(logic).wait()
    resumed = billing_step(stream, blob, tmp_path)  # our rules: replayed, and a base is due
    assert _ref(resumed.snapshot()).entries == ()
    upgraded = engine_module.RULES_VERSION + 1  # the next release's rules
    monkeypatch.setattr(journal_module, "RULES_VERSION", upgraded)
    monkeypatch.setattr(engine_module, "RULES_VERSION", upgraded)
    with pytest.raises(StackError, match=r"holds a close or reopen .* Start the previous version"):
        billing_step(stream, blob, tmp_path)


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


@needs_fork
def test_a_compaction_forked_from_a_worker_thread_is_adopted(
    tmp_path: Path, stream: list[Item]
) -> None:
    """Bytewax calls snapshot() on its worker threads (not Python's main thread with more than
    one worker): the child must still write its base (it resets signal handlers, which only
    the main thread may, and a child is its process's main thread)."""
    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9, compaction="fork")
    logic.snapshot()
    _to_first_close(logic, stream)
    worker = threading.Thread(target=logic.snapshot)
    worker.start()
    worker.join()
    journal = _journal(logic)
    assert journal.compacting
    journal.wait()
    ref = journal.ref
    assert ref is not None and ref.generation == 2 and (tmp_path / ref.base).exists()


@needs_fork
def test_a_restart_while_the_child_writes_resumes_from_the_previous_base_and_journal(
    tmp_path: Path, stream: list[Item], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill during a forked compaction: the snapshots taken meanwhile name the previous base
    and a journal holding the close, which rebuild the uninterrupted state; the child's base,
    written after the restart, is named by nothing and changes nothing."""
    _in_the_child(monkeypatch, lambda: time.sleep(1.5))
    logic = billing_step(stream, None, tmp_path, journal_min_changes=10**9, compaction="fork")
    logic.snapshot()
    cut = _to_first_close(logic, stream)
    logic.snapshot()  # forks the slow child
    feed(logic, stream[cut : cut + 60])
    blob = logic.snapshot()  # the last snapshot before the "kill"
    assert _journal(logic).compacting and _holds_a_close(_ref(blob), tmp_path)
    resumed = billing_step(stream, blob, tmp_path, compaction="fork")
    reference = billing_step(stream, None, None)
    feed(reference, stream[: cut + 60])
    for name in COMPARED:
        assert getattr(resumed.engine.state, name) == getattr(reference.engine.state, name)
    _journal(logic).wait()  # the first run's child finishes after the restart
    started, _ = resumed.on_notify()
    check_started(resumed, list(started))
    assert feed(resumed, stream[cut + 60 :]) == feed(reference, stream[cut + 60 :])
    again = billing_step(stream, resumed.snapshot(), tmp_path)
    assert again.engine.lines == reference.engine.lines
