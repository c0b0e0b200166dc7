"""``billsync bench state``: memory, snapshot size and resume time of the billing engine.

Two worlds (:mod:`ops.bench.world`):

- all open (``--open`` omitted): reference rows, then N approved timesheet lines over 12
  months in random order (:func:`~ops.bench.world.open_lines_stream`), nothing closed;
- history (``--open M``): a firm over time, N lines month by month in work_date order with
  the months before the last 12 closed as the stream passes them
  (:func:`~ops.bench.world.history_stream`), so about N - M lines end final and M open. The
  same command then also measures the all-open world of M lines — the baseline of SPEC 2b's
  promise that state is bounded by open items — and prints each figure's ratio to it.

Each world is measured in its own Python process (``python -m ops.bench.state``), so one
world's memory cannot mix into the other's figures. Figures of a world:

- ``rss_mb``: the process's resident set after the build (and a ``gc.collect()``) minus
  before it; ``peak_rss_mb``: its high-water mark (``VmHWM``), the whole process;
- the billing step with a ``segment_dir``, as the flow runs it (:mod:`dataflows.journal`):
  its first snapshot writes every final segment once (``segment_files``/``segment_bytes``)
  and the first base (``first_snapshot_s``). Then one contract's rate changes (the contract
  with the most open lines; ``epoch_lines``: the lines that unit re-evaluated) and the
  epoch's snapshot is taken: ``epoch_snapshot_s``, and ``epoch_snapshot_bytes`` (what
  Bytewax stores plus the journal file it wrote) — what an epoch pays. ``compaction_s`` and
  ``base_bytes``: writing a new base of the whole state (segments by reference), what an
  epoch pays when the journal is compacted (after a close, or about once per
  state-sized number of changes), in the flow's thread (``BILLSYNC_COMPACTION=inline``); the
  same compaction forked (the default): ``compaction_fork_pause_s``, the flow's pause (the
  snapshot call: the fork), and ``compaction_fork_child_s``, until the child's base was
  written and adopted. ``inline_snapshot_bytes`` is the state pickled with its
  segments inline (no ``segment_dir``);
- ``unpickle_s``: loading the base (and its segment files) in this process;
- ``resume_s``: a fresh Python process (what a restart after ``kill -9`` is) that reads the
  epoch's snapshot from disk (the base, the journal entry replayed), builds the billing step
  from it exactly as Bytewax does on resume
  (``BillingLogic(mappings, resume=bytes, segment_dir=...)``) and applies one new change
  (``resume_rss_mb``: that process's resident set then). It does not include Bytewax reading
  its SQLite recovery store, nor the replay of the source records since the last snapshot.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

from billsync.change import Change, Op, SourcePosition
from billsync.errors import BillsyncError
from billsync.model import ContractRate
from dataflows.billing.engine import BillingEngine
from dataflows.billing.mappings import load_mappings
from dataflows.emissions import Emission
from dataflows.journal import Journal, fork_supported
from dataflows.logic import BillingLogic
from dataflows.ordering import Unit
from dataflows.snapshots import SegmentStore, dumps, loads
from ops.bench.world import Event, history_stream, open_lines_stream
from ops.run.gctune import tune_gc

GOAL_RATIO = 1.2  # SPEC 2b: N lines with M open within 1.2x of M open lines
PROGRESS_EVERY = 5000

RESUME_SCRIPT = """
import json, sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from dataflows.billing.mappings import load_mappings
from billsync.change import Change, Op, SourcePosition
from dataflows.logic import BillingLogic
from billsync.model import ContractRate
from dataflows.ordering import Unit
from billsync.model import Timesheet
from dataflows.ordering import Unit
from ops.bench.state import rss_mb
from ops.run.gctune import tune_gc
tune_gc()  # as billsync run does before it resumes
data = open(sys.argv[1], "rb").read()
logic = BillingLogic(load_mappings(), data, Path(sys.argv[2]))
day = date.fromisoformat(sys.argv[3])
at = datetime(day.year, day.month, day.day, 20, tzinfo=UTC)
row = Timesheet(10**9, "E1", "P1", day, Decimal("1.00"), True, "approved", at, None, at)
change = Change("timesheets", Op.CREATE, row.key, None, row, SourcePosition("psa", lsn=1, tx_id=1))
out = logic.apply_unit(Unit("psa", (change,), None, ()))
assert list(out), "the resumed engine emitted nothing for a new approved line"
print(json.dumps({"lines": len(logic.engine.lines), "finals": len(logic.engine.finals),
                  "rss_mb": rss_mb("VmRSS")}))
"""


class BenchError(BillsyncError):
    """A measuring process failed."""


def rss_mb(field: str = "VmRSS") -> float:
    """A memory figure of this process from ``/proc/self/status`` (``VmRSS``, ``VmHWM``), MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def world(lines: int, open_lines: int | None) -> tuple[str, Any]:
    """The name and event stream of a world: all open, or a history with ``open_lines`` open."""
    if open_lines is None or open_lines >= lines:
        return f"all open, {lines:,} lines", open_lines_stream(lines)
    return f"{lines:,} lines, {open_lines:,} open", history_stream(lines, open_lines)


def build_engine(
    events: Any, progress: Callable[[int], None] | None = None
) -> tuple[BillingEngine, dict[str, Any]]:
    """Apply a world's events to a new engine; (engine, what was applied)."""
    engine = BillingEngine(load_mappings())
    pos = SourcePosition("psa", lsn=1, tx_id=1)
    applied: dict[str, Any] = {"timesheets": 0, "closes": 0, "last_work_date": None}
    ev: Event
    for ev in events:
        op, _before, after = ev
        assert after is not None
        engine.apply(Change(after.TABLE, Op(op), after.key, None, after, pos))
        if after.TABLE == "accounting_periods":
            applied["closes"] += 1
        elif after.TABLE == "timesheets":
            applied["timesheets"] += 1
            applied["last_work_date"] = getattr(after, "work_date", None)
            if progress is not None and applied["timesheets"] % PROGRESS_EVERY == 0:
                progress(PROGRESS_EVERY)
    return engine, applied


def _contract_changed(engine: BillingEngine) -> Unit:
    """A unit (one transaction) raising every hourly rate of the contract with the most
    billed lines by one."""
    billed = Counter(t.contract_id for t in engine.lines.values() if t.billed_amount)
    contract = billed.most_common(1)[0][0] if billed else None
    pos = SourcePosition("psa", lsn=2, tx_id=2)  # newer than the world's (lsn 1)
    changes = []
    for rate in engine.state.rows["contract_rates"].values():
        assert isinstance(rate, ContractRate)
        if rate.hourly_rate is not None and contract in (None, rate.contract_id):
            raised = dataclasses.replace(rate, hourly_rate=rate.hourly_rate + 1)
            changes.append(Change(raised.TABLE, Op.UPDATE, raised.key, rate, raised, pos))
            if contract is None:
                break
    return Unit("psa", tuple(changes), None, ())


def measure(
    lines: int, open_lines: int | None, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Build one world in this process and take its figures (see the module docstring); the
    process collects garbage as the flow's do (:mod:`ops.run.gctune`)."""
    tune_gc()
    name, events = world(lines, open_lines)
    gc.collect()
    rss0 = rss_mb()
    began = time.perf_counter()
    engine, applied = build_engine(events, progress)
    build_s = time.perf_counter() - began
    gc.collect()
    rss = rss_mb() - rss0
    open_count, final_count = len(engine.lines), len(engine.finals)
    with tempfile.TemporaryDirectory(prefix="billsync-bench-state-") as tmp:
        segment_dir = Path(tmp) / "finals"
        logic = BillingLogic(engine.mappings, None, segment_dir)
        logic._engine = engine  # the step as Bytewax holds it after these changes
        began = time.perf_counter()
        logic.snapshot()  # the first epoch: writes each segment and the first base
        first_snapshot_s = time.perf_counter() - began
        segments = sorted(segment_dir.glob("final-*.seg")) if segment_dir.exists() else []
        before = set(segment_dir.iterdir())
        epoch_lines = sum(
            1 for o in logic.apply_unit(_contract_changed(engine)) if isinstance(o, Emission)
        )
        began = time.perf_counter()
        snap = logic.snapshot()  # an epoch in which one contract changed
        epoch_snapshot_s = time.perf_counter() - began
        journal = sum(p.stat().st_size for p in set(segment_dir.iterdir()) - before)
        path = Path(tmp) / "billing.snapshot"
        path.write_bytes(snap)
        epoch_snapshot_bytes = len(snap) + journal
        del snap
        journal_state = logic._journal
        assert journal_state is not None
        journal_state.compact_next()
        began = time.perf_counter()
        ref = loads(logic.snapshot(), None)[0]  # an epoch that compacts: a new base
        compaction_s = time.perf_counter() - began
        forked = _forked_compaction(logic, journal_state)
        base = segment_dir / ref.base
        began = time.perf_counter()
        loads(base.read_bytes(), SegmentStore(segment_dir))
        unpickle_s = time.perf_counter() - began
        base_bytes = base.stat().st_size
        inline = len(dumps(engine.snapshot(), None)) if segments else base_bytes
        day: date = applied["last_work_date"] or date(2026, 1, 9)
        began = time.perf_counter()
        done = subprocess.run(  # noqa: S603  # our own interpreter and script
            [sys.executable, "-c", RESUME_SCRIPT, str(path), str(segment_dir), day.isoformat()],
            capture_output=True,
            text=True,
            check=False,
            cwd=os.getcwd(),
        )
        resume_s = time.perf_counter() - began
        if done.returncode != 0:
            raise BenchError(f"the resume process failed ({done.returncode}): {done.stderr}")
        segment_bytes = sum(p.stat().st_size for p in segments)
    resumed = json.loads(done.stdout.strip().splitlines()[-1])
    return {
        "world": name,
        "lines": lines,
        "timesheets": applied["timesheets"],
        "closes": applied["closes"],
        "closed_through": engine.closed_through,
        "open_lines": open_count,
        "final_lines": final_count,
        "build_s": round(build_s, 2),
        "rss_mb": round(rss, 1),
        "rss_bytes_per_open_line": round(rss * 1024 * 1024 / max(open_count, 1)),
        "peak_rss_mb": rss_mb("VmHWM"),
        "base_bytes": base_bytes,
        "base_bytes_per_open_line": round(base_bytes / max(open_count, 1), 1),
        "inline_snapshot_bytes": inline,
        "segment_files": len(segments),
        "segment_bytes": segment_bytes,
        "first_snapshot_s": round(first_snapshot_s, 3),
        "compaction_s": round(compaction_s, 3),
        **forked,
        "epoch_lines": epoch_lines,
        "epoch_snapshot_bytes": epoch_snapshot_bytes,
        "epoch_snapshot_s": round(epoch_snapshot_s, 4),
        "unpickle_s": round(unpickle_s, 3),
        "resume_s": round(resume_s, 2),
        "resume_rss_mb": resumed["rss_mb"],
        "resumed_lines": resumed["lines"],
        "resumed_finals": resumed["finals"],
    }


def _forked_compaction(logic: BillingLogic, journal: Journal) -> dict[str, Any]:
    """The same compaction forked (``BILLSYNC_COMPACTION=fork``): the flow's pause, and the
    child's time until the base was adopted; empty where there is no copy-on-write fork."""
    if not fork_supported():
        return {}
    journal.compaction = "fork"
    journal.compact_next()
    began = time.perf_counter()
    logic.snapshot()
    pause_s = time.perf_counter() - began  # the snapshot call: the fork and a journal file
    journal.wait()
    child_s = time.perf_counter() - began
    journal.compaction = "inline"
    if journal.compacting or journal.ref is None or "-" not in journal.ref.base:
        raise BenchError("the forked compaction wrote no base")
    return {
        "compaction_fork_pause_s": round(pause_s, 4),
        "compaction_fork_child_s": round(child_s, 3),
    }


def measure_apart(
    lines: int, open_lines: int | None, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """:func:`measure` in a fresh Python process (``python -m ops.bench.state``): progress
    arrives as ``P <lines>`` lines on its stdout, the figures as one ``R <json>`` line."""
    argv = [sys.executable, "-m", "ops.bench.state", str(lines)]
    if open_lines is not None:
        argv.append(str(open_lines))
    with subprocess.Popen(  # noqa: S603  # our own interpreter and module
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=os.getcwd()
    ) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        result: dict[str, Any] | None = None
        for line in proc.stdout:
            if line.startswith("P ") and progress is not None:
                progress(int(line[2:]))
            elif line.startswith("R "):
                result = json.loads(line[2:])
        err = proc.stderr.read()
    if proc.returncode != 0 or result is None:
        raise BenchError(f"bench state for {lines} lines failed ({proc.returncode}): {err}")
    return result


RATIO_FIGURES = ("rss_mb", "peak_rss_mb", "base_bytes", "compaction_s", "resume_s",
                 "resume_rss_mb")  # fmt: skip
GOAL_FIGURES = ("rss_mb", "base_bytes", "compaction_s", "resume_s")


def run_state(
    lines: int, open_lines: int | None = None, progress: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """The figures of ``lines`` lines (all open), or of ``lines`` with ``open_lines`` open
    beside the all-open ``open_lines`` baseline of the same run, with their ratios."""
    if open_lines is None or open_lines >= lines:
        return measure_apart(lines, None, progress)
    history = measure_apart(lines, open_lines, progress)
    baseline = measure_apart(open_lines, None, progress)
    ratios: dict[str, float | None] = {
        f: round(history[f] / baseline[f], 2) if baseline[f] else None for f in RATIO_FIGURES
    }
    return {
        "lines": lines,
        "open": open_lines,
        "worlds": [history, baseline],
        "ratios": ratios,
        "goal_ratio": GOAL_RATIO,
        "within_goal": {f: (ratios[f] or float("inf")) <= GOAL_RATIO for f in GOAL_FIGURES},
    }


def main(argv: list[str]) -> None:
    """``python -m ops.bench.state LINES [OPEN]``: one world's figures (see above)."""
    lines = int(argv[0])
    open_lines = int(argv[1]) if len(argv) > 1 else None
    result = measure(lines, open_lines, lambda k: print(f"P {k}", flush=True))
    print("R " + json.dumps(result, default=str), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
