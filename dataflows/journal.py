"""Incremental snapshots of the billing step: a base, and a journal of the units since.

Bytewax calls the step's ``snapshot()`` at the end of every epoch in which it changed, and
stores the bytes it returns. Pickling the whole engine there makes every epoch pay for all
open state (seconds at 100k open lines, BENCHMARKS.md) however little changed. With a
segment directory (beside the recovery store, :mod:`dataflows.snapshots`) the step instead
keeps, as files written once:

- a **base**: the engine state pickled whole (``base-<generation>-<sha256>.seg``);
- a **journal**: per epoch since the base, one file with the units the engine applied in
  that epoch, in order (``journal-<generation>-<seq>-<sha256>.seg``).

The bytes Bytewax stores per epoch are then a :class:`Journaled` reference (the file names),
the applied offsets and the ordering stage's held changes, and the epoch's work is pickling
what it applied: proportional to what changed, not to the state. Restoring loads the base
and applies the journal's units again with the engine (pure and deterministic: the same
units on the same state give the same state), discarding the deltas (their emissions
reached the writer before the snapshot did).

**Compaction** (a new base, the next generation) happens at the snapshot of an epoch when

- the journal holds at least ``max(min_changes, size of the base)`` changes (size: open
  lines plus source rows when the base was written), so a base costs about one state-sized
  pickle per state-sized number of changes (constant per change, amortised) and a restore
  replays at most about as many changes as the base holds;
- the epoch closed or reopened a period, or the step adopted changed mappings at start (so a
  journal holds a close or reopen only while a forked base is being written, below, and
  never a re-evaluation: see the rules-upgrade note), or it resumed from a journal holding
  a close or reopen;
- there is no base yet (the first snapshot of a fresh step; always written inline).

**Compaction off the flow's thread** (``compaction="fork"``, the default on Linux). Written in
the flow's thread, a base pauses the flow for the whole pickle (``bench state``:
``compaction_s``, seconds at 100k open lines), after every close. Instead the step forks: the
child process pickles the engine as it was at the fork (copy-on-write pages: a consistent
point-in-time copy, as Redis's background saves) into ``base-<generation>-<random>.seg``
and exits; the flow goes on at once. Until the child has written the base, the snapshots
keep naming the previous base and its journal, which goes on growing — holding, for that
while, the close or reopen that asked for the base. The first snapshot after the child
exited successfully switches to the new base and the journal files written since the fork.
So a crash at any point resumes from files that are complete. A child that fails or runs
longer than :data:`FORK_TIMEOUT_S` (killed) is logged and the next snapshot writes its
base in the flow's thread (``inline``). The child never logs and leaves with ``os._exit``:
it is a copy of a process with other threads (Bytewax's, librdkafka's), whose locks it must
not wait for; the final segments are written and named by the parent before the fork, so
the child hashes nothing. Its cost: memory, since the pickler touches every object's
reference count and so copies about as many pages as the state holds, for as long as it
runs. A journal that holds a close cannot be replayed by code of other billing rules (its
finals would be other rules' finals): such a resume is refused with what to do.

A compaction in the flow's thread (``inline``) pays the whole pickle. Files of
generations before the last :data:`KEEP_GENERATIONS` are deleted at a compaction once they
are older than the retention (the recovery store's backup interval): Bytewax resumes from
the latest or the one before latest epoch, whose snapshots name the current or the previous
generation; a backup restored from up to that interval ago still finds its files.

**Rules upgrades.** The journal replays units with the running code. When that code's
:data:`~dataflows.billing.rules.RULES_VERSION` differs from the one that wrote the journal,
the replayed lines hold targets of the new rules while the ERP holds those of the old; the
step then re-emits the current target of every line and milestone the journal touched
(:attr:`Replayed.touched`; the writer posts only differences from what it holds), and the
stale-rules re-evaluation of every item follows as before (``dataflows/logic.py``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import re
import secrets
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, NoReturn

import structlog
from prometheus_client import Histogram

from billsync.change import Change
from billsync.errors import StackError
from dataflows.billing.engine import BillingEngine, EngineState
from dataflows.billing.finals import FinalSegment
from dataflows.billing.rules import RULES_VERSION
from dataflows.billing.target import Delta, LineKey, LineUpdate, ScheduleUpdate
from dataflows.snapshots import SegmentStore, dump, dumps, loads

MIN_CHANGES = 20_000  # below this many journaled changes a base is not rewritten
KEEP_GENERATIONS = 3  # the current generation and the two before it are never deleted
FORK_TIMEOUT_S = 1800.0  # a child writing a base longer than this is killed (75 s at 1M lines)
_GENERATION = re.compile(r"^(?:base|journal)-(\d{10})-")
Compaction = Literal["fork", "inline"]
log = structlog.get_logger(__name__)

COMPACTION_SECONDS = Histogram(
    "billsync_compaction_seconds",
    "Writing a new base of the billing step: the flow's pause (the whole pickle when inline, "
    "the fork otherwise) and, forked, the child's time until its base was written",
    ["phase"],
    buckets=(0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)


def fork_supported() -> bool:
    """Whether a base can be written by a forked child here (Linux: fork is copy-on-write and
    safe to follow by pickling and ``os._exit``; macOS' fork with threads is not)."""
    return sys.platform == "linux" and hasattr(os, "fork")


@dataclass(frozen=True, slots=True)
class FinalImport:
    """A journal entry of a shard: the final segments other shards' closes made, imported
    between two units (``BillingEngine.import_finals``; dataflows/sharding.py)."""

    segments: tuple[FinalSegment, ...]


# one journaled unit: its changes, and the line keys and milestone ids its deltas touched;
# or, in a shard's journal, an import of other shards' final segments (no lines touched)
Entry = tuple[tuple[Change, ...] | FinalImport, tuple[LineKey, ...], tuple[str, ...]]


@dataclass(frozen=True, slots=True)
class Journaled:
    """What a snapshot holds instead of the engine state: the files to rebuild it from."""

    generation: int
    base: str
    entries: tuple[str, ...] = ()
    changes: int = 0  # changes in the entries
    base_size: int = 0  # open lines plus source rows in the base
    rules_version: int = RULES_VERSION  # of the code that wrote the entries


@dataclass(frozen=True, slots=True)
class Replayed:
    """An engine rebuilt from a :class:`Journaled`; ``touched``: a re-emission of the lines and
    milestones the journal touched when it was written by other rules (else empty)."""

    engine: BillingEngine
    touched: Delta = field(default_factory=Delta)
    periods: bool = False  # the journal holds a close or reopen: compact at the next snapshot


def _state_size(engine: BillingEngine) -> int:
    state = engine.state
    return len(state.lines) + sum(len(rows) for rows in state.rows.values())


@dataclass(slots=True)
class _Child:
    """A base being written by a forked child."""

    pid: int
    generation: int
    base: str  # the file it writes
    base_size: int
    began: float  # time.monotonic() at the fork
    began_at: float  # time.time() at the fork (the base file's mtime says when it was done)
    entries: list[tuple[str, int]] = field(default_factory=list)  # journal files since, changes


# children forked by any journal of this process and not waited for yet: a step that ends
# (or is dropped) before adopting its child's base leaves it to be reaped here
_FORKED: set[int] = set()


def _reap() -> None:
    """Wait for the forked children that have exited (no zombies in a long-lived process)."""
    for pid in list(_FORKED):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _FORKED.discard(pid)


def _write_base_and_exit(store: SegmentStore, name: str, engine: BillingEngine) -> NoReturn:
    """The forked child: pickle the engine as it was at the fork into ``name``, then leave
    without running anything of the parent's (no logging, no atexit, no Bytewax unwinding)."""
    code = 1
    try:
        for sig in (signal.SIGTERM, signal.SIGINT):  # not the parent's handlers: just end
            signal.signal(sig, signal.SIG_DFL)
        with contextlib.suppress(OSError):  # out of memory, the kernel kills this, not the flow
            Path("/proc/self/oom_score_adj").write_text("1000")
        gc.disable()  # nothing is freed before exit; collections would only copy pages
        store.write(name, partial(dump, engine.snapshot(), store))  # streamed: no copy in memory
        code = 0
    except BaseException:  # the parent sees the exit status and logs it; stderr says why
        with contextlib.suppress(BaseException):
            os.write(2, traceback.format_exc().encode("utf-8", "replace"))
    finally:
        os._exit(code)


class Journal:
    """The base and journal files of one billing step (see the module docstring)."""

    def __init__(
        self,
        store: SegmentStore,
        *,
        retain_s: float = 0.0,
        min_changes: int = MIN_CHANGES,
        ref: Journaled | None = None,
        compaction: Compaction = "inline",
    ) -> None:
        self._store = store
        self._retain_s = retain_s
        self._min_changes = min_changes
        self._ref = ref
        self._pending: list[Entry] = []
        self._pending_changes = 0
        self._compact = ref is None
        self._fork = compaction == "fork" and fork_supported()
        self._child: _Child | None = None
        self._inline_next = False  # a child failed: the next base is written inline
        self.last_pause_s = 0.0  # the flow's pause of the latest compaction (benches)

    @property
    def ref(self) -> Journaled | None:
        """What the latest snapshot named."""
        return self._ref

    @property
    def compaction(self) -> Compaction:
        """How the next base is written (``fork`` only where :func:`fork_supported`)."""
        return "fork" if self._fork else "inline"

    @compaction.setter
    def compaction(self, mode: Compaction) -> None:
        self._fork = mode == "fork" and fork_supported()

    @property
    def compacting(self) -> bool:
        """A forked child is writing a base."""
        return self._child is not None

    def record(self, changes: Sequence[Change], deltas: Sequence[Delta]) -> None:
        """A unit the engine applied, with the deltas it returned."""
        if any(d.period is not None for d in deltas):
            self._compact = True
        lines = tuple(u.key for d in deltas for u in d.lines)
        schedule = tuple(s.milestone_id for d in deltas for s in d.schedule)
        self._pending.append((tuple(changes), lines, schedule))
        self._pending_changes += len(changes)

    def record_import(self, segments: Sequence[FinalSegment]) -> None:
        """Final segments of other shards imported (after their close: a base soon, as
        after a close here)."""
        self._compact = True
        self._pending.append((FinalImport(tuple(segments)), (), ()))

    def compact_next(self) -> None:
        """Write a base at the next snapshot (the state changed outside a unit)."""
        self._compact = True

    def snapshot(self, engine: BillingEngine) -> Journaled:
        """At an epoch's end: this epoch's units as one more journal file, and a new base
        when one is due — forked, or written here (see the module docstring)."""
        self._poll()
        ref = self._ref
        changes = (ref.changes if ref is not None else 0) + self._pending_changes
        due = self._compact or ref is None or changes >= max(self._min_changes, ref.base_size)
        if ref is None or (due and self._child is None and (self._inline_next or not self._fork)):
            self._write_base(engine, ref.generation + 1 if ref is not None else 1)
        else:
            if self._pending:
                blob = dumps(self._pending, self._store)
                name = self._store.put(f"journal-{ref.generation:010d}-{len(ref.entries):08d}",
                                       blob)  # fmt: skip
                ref = self._ref = dataclasses.replace(ref, entries=(*ref.entries, name),
                                                      changes=changes)  # fmt: skip
                if self._child is not None:
                    self._child.entries.append((name, self._pending_changes))
            if due and self._child is None:
                self._fork_base(engine, ref.generation + 1)
        self._pending = []
        self._pending_changes = 0
        assert self._ref is not None
        return self._ref

    def wait(self) -> None:
        """Wait for a forked child to finish writing its base, and adopt it (benches, tests;
        the flow never waits: it adopts the base at the first snapshot after the child)."""
        self._poll(block=True)

    def _write_base(self, engine: BillingEngine, generation: int) -> None:
        began = time.perf_counter()
        base = self._store.put(f"base-{generation:010d}", dumps(engine.snapshot(), self._store))
        self.last_pause_s = time.perf_counter() - began
        COMPACTION_SECONDS.labels(phase="inline").observe(self.last_pause_s)
        self._ref = Journaled(generation, base, base_size=_state_size(engine))
        self._compact = self._inline_next = False
        self._sweep(generation)

    def _fork_base(self, engine: BillingEngine, generation: int) -> None:
        """Start a child writing the engine as it is now as the base of ``generation``."""
        name = f"base-{generation:010d}-{secrets.token_hex(16)}.seg"
        for segment in engine.finals.segments:  # written and named here: the child hashes none
            self._store.name_of(segment)
        size = _state_size(engine)
        _reap()
        began = time.perf_counter()
        try:
            pid = os.fork()
        except OSError as exc:  # no memory or processes left for a child: write it here
            log.error("compaction_fork_failed", generation=generation, error=str(exc),
                      action="the base is written in the flow's thread")  # fmt: skip
            self._write_base(engine, generation)
            return
        if pid == 0:
            _write_base_and_exit(self._store, name, engine)
        self.last_pause_s = time.perf_counter() - began
        _FORKED.add(pid)
        COMPACTION_SECONDS.labels(phase="fork").observe(self.last_pause_s)
        self._child = _Child(pid, generation, name, size, time.monotonic(), time.time())
        self._compact = False  # the base it writes holds everything applied so far
        log.info("compaction_forked", generation=generation, pid=pid, base=name,
                 pause_ms=round(self.last_pause_s * 1000, 1))  # fmt: skip

    def _poll(self, *, block: bool = False) -> None:
        """A forked child that has exited: adopt its base, or write the next one inline."""
        child = self._child
        if child is None:
            return
        path = self._store.directory / child.base
        try:
            pid, status = os.waitpid(child.pid, 0 if block else os.WNOHANG)
            code = os.waitstatus_to_exitcode(status) if pid else None
        except ChildProcessError:  # reaped by someone else: its file says how it ended
            code = 0 if path.exists() else 1
        if code is None:
            if time.monotonic() - child.began < FORK_TIMEOUT_S:
                return
            os.kill(child.pid, signal.SIGKILL)
            os.waitpid(child.pid, 0)
            code = -signal.SIGKILL
        self._child = None
        _FORKED.discard(child.pid)
        took = time.monotonic() - child.began
        if code != 0 or not path.exists():
            path.with_suffix(".tmp").unlink(missing_ok=True)
            self._inline_next = self._compact = True
            log.error("compaction_failed", generation=child.generation, pid=child.pid,
                      exit_code=code, seconds=round(took, 1),
                      action="the next snapshot writes the base in the flow's thread")  # fmt: skip
            return
        written_s = max(0.0, path.stat().st_mtime - child.began_at)  # the child's own time
        COMPACTION_SECONDS.labels(phase="child").observe(written_s)
        self._ref = Journaled(
            child.generation,
            child.base,
            entries=tuple(name for name, _ in child.entries),
            changes=sum(n for _, n in child.entries),
            base_size=child.base_size,
        )
        log.info("compaction_done", generation=child.generation, written_s=round(written_s, 2),
                 adopted_after_s=round(took, 2),
                 journal_entries=len(child.entries))  # fmt: skip
        self._sweep(child.generation)

    def _sweep(self, generation: int) -> None:
        """Delete the files of generations before the kept ones, once past the retention."""
        directory = self._store.directory
        if not directory.exists():
            return
        oldest_kept = generation - KEEP_GENERATIONS + 1
        cutoff = time.time() - self._retain_s
        for path in directory.glob("*.seg"):
            found = _GENERATION.match(path.name)
            if found and int(found.group(1)) < oldest_kept and path.stat().st_mtime < cutoff:
                path.unlink(missing_ok=True)


def replay(ref: Journaled, store: SegmentStore) -> Replayed:
    """Rebuild the engine a :class:`Journaled` names: its base, then its units again."""
    state = loads(store.read(ref.base), store)
    if not isinstance(state, EngineState):
        raise StackError("recovery", f"{store.directory / ref.base} does not hold an engine")
    engine = BillingEngine.restore(state)
    other_rules = ref.rules_version != RULES_VERSION
    lines: set[LineKey] = set()
    schedule: set[str] = set()
    periods = False
    for name in ref.entries:
        entries: list[Entry] = loads(store.read(name), store)
        for changes, touched_lines, touched_schedule in entries:
            if isinstance(changes, FinalImport):
                engine.import_finals(changes.segments)
                continue
            if any(c.table == PERIODS for c in changes):
                periods = True
                if other_rules:
                    raise StackError("recovery", _OTHER_RULES.format(
                        name=name, theirs=ref.rules_version, ours=RULES_VERSION))  # fmt: skip
            engine.apply_unit(changes)
            if other_rules:
                lines.update(touched_lines)
                schedule.update(touched_schedule)
    if not other_rules:
        return Replayed(engine, periods=periods)
    return Replayed(engine, _current(engine, lines, schedule))


PERIODS = "accounting_periods"
_OTHER_RULES = (
    "the recovery snapshot's journal file {name} holds a close or reopen of an accounting "
    "period applied under billing rules version {theirs}, and this version's rules are "
    "{ours}: replayed by these rules, the close could make other items final than the ERP "
    "holds final. Start the previous version once (it writes a new base within seconds and "
    "the journal no longer holds the close), or rebuild the recovery store "
    "(`billsync run --rebuild`)"
)


def _current(engine: BillingEngine, lines: set[LineKey], schedule: set[str]) -> Delta:
    """The current targets of ``lines`` and ``schedule`` as updates (final lines excluded:
    a journal of other rules that holds a close is refused, so they were final before it and
    the writer has them)."""
    return Delta(
        lines=tuple(
            LineUpdate(k, None, engine.lines.get(k))
            for k in sorted(lines)
            if engine.finals.find(k) is None
        ),
        schedule=tuple(ScheduleUpdate(m, None, engine.schedule.get(m)) for m in sorted(schedule)),
    )
