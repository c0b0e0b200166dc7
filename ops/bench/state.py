"""``billsync bench state``: memory, snapshot size and resume time of N open lines.

The engine is built in this process from a synthetic firm (:func:`~ops.bench.world.
open_lines_stream`: reference rows, then N approved timesheet lines over 12 months, applied
as typed changes — the edge is not part of this measure). Figures:

- ``rss_mb``: resident set of this process after the build minus before it (``/proc``);
- ``snapshot_bytes``: ``BillingLogic.snapshot()`` — the pickle Bytewax stores per epoch;
- ``pickle_s`` / ``unpickle_s``: time to take and to load that snapshot;
- ``resume_s``: a fresh Python process (what a restart after ``kill -9`` is) that reads the
  snapshot from disk, builds the billing step from it exactly as Bytewax does on resume
  (``BillingLogic(mappings, resume=bytes)``) and applies one new change. It does not include
  Bytewax reading its SQLite recovery store, nor the replay of the source records since the
  last snapshot (at most ``snapshot_interval_s`` of traffic).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dataflows.billing.engine import BillingEngine
from dataflows.billing.mappings import load_mappings
from dataflows.cdc.change import Change, Op, SourcePosition
from dataflows.logic import BillingLogic
from ops.bench.world import open_lines_stream

RESUME_SCRIPT = """
import pickle, sys, time
from datetime import UTC, date, datetime
from decimal import Decimal
from dataflows.billing.mappings import load_mappings
from dataflows.cdc.change import Change, Op, SourcePosition
from dataflows.logic import BillingLogic
from dataflows.model import Timesheet
data = open(sys.argv[1], "rb").read()
logic = BillingLogic(load_mappings(), data)
at = datetime(2026, 1, 9, 12, tzinfo=UTC)
row = Timesheet(10**9, "E1", "P1", date(2026, 1, 9), Decimal("1.00"), True, "approved",
                at, None, at)
out, _ = logic.on_item(Change("timesheets", Op.CREATE, row.key, None, row,
                              SourcePosition("psa", lsn=1, tx_id=1)))
assert list(out), "the resumed engine emitted nothing for a new approved line"
print(len(logic.engine.lines))
"""


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_engine(lines: int, progress: Callable[[int], None] | None = None) -> BillingEngine:
    engine = BillingEngine(load_mappings())
    pos = SourcePosition("psa", lsn=1, tx_id=1)
    for i, (_op, _before, after) in enumerate(open_lines_stream(lines)):
        assert after is not None
        engine.apply(Change(after.TABLE, Op.READ, after.key, None, after, pos))
        if progress is not None and i % 5000 == 4999:
            progress(5000)
    return engine


def run_state(lines: int, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    rss0 = _rss_mb()
    began = time.perf_counter()
    engine = build_engine(lines, progress)
    build_s = time.perf_counter() - began
    rss = _rss_mb() - rss0
    open_lines = len(engine.lines)
    logic = BillingLogic(engine.mappings, None)
    logic._engine = engine  # the step as Bytewax holds it after these changes
    began = time.perf_counter()
    snap = logic.snapshot()
    pickle_s = time.perf_counter() - began
    began = time.perf_counter()
    pickle.loads(snap)  # noqa: S301  # our own snapshot, just written
    unpickle_s = time.perf_counter() - began
    with tempfile.TemporaryDirectory(prefix="billsync-bench-state-") as tmp:
        path = Path(tmp) / "billing.snapshot"
        path.write_bytes(snap)
        del snap
        began = time.perf_counter()
        done = subprocess.run(  # noqa: S603  # our own interpreter and script
            [sys.executable, "-c", RESUME_SCRIPT, str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=os.getcwd(),
        )
        resume_s = time.perf_counter() - began
        size = path.stat().st_size
    resumed_lines = int(done.stdout.strip().splitlines()[-1])
    return {
        "lines": lines,
        "open_lines": open_lines,
        "build_s": round(build_s, 2),
        "rss_mb": round(rss, 1),
        "rss_bytes_per_line": round(rss * 1024 * 1024 / max(open_lines, 1)),
        "snapshot_bytes": size,
        "snapshot_bytes_per_line": round(size / max(open_lines, 1), 1),
        "pickle_s": round(pickle_s, 2),
        "unpickle_s": round(unpickle_s, 2),
        "resume_s": round(resume_s, 2),
        "resumed_lines": resumed_lines,
        "targets": {"rss_mb_at_1M": 1536, "resume_s": 30},
    }
