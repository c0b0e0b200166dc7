"""Killed at 20 random points, a file replay ends in the ERP of an uninterrupted one (SPEC 4).

Issue 10, point 5, first bullet. A capture (:mod:`tests.replay.capture`: the bench's firm as
Debezium Avro with transaction metadata, a few thousand records) is replayed with
``billsync run --from-file FILE --erp-url URL --recovery-dir DIR --uneven-batches`` in a
subprocess — the file read in batches of random sizes, new at every start, as a Kafka
consumer's fetches vary with timing, so a replay after a kill cuts the input differently
from the run before it:

- run A, into ERP A, uninterrupted;
- run B, into ERP B, SIGKILLed at :data:`KILLS` random points — a fresh point each time,
  drawn from a seeded RNG (the seed is printed; ``BILLSYNC_REPLAY_SEED`` replays one) —
  and started again with the same arguments after each kill, until it completes. Most
  points come once the ledger holds a random number of entries (one threshold per stratum
  of the uninterrupted run's ledger, so these kills walk through the whole file) and a
  random moment more; others a random time after the flow started (often while it replays
  what its last snapshot did not cover), or during start-up (:func:`kill_points`). Every
  point has a ceiling too: the i-th start is killed at the latest once the ledger holds
  i/20 of 90% of the uninterrupted run's entries, so no point lets the run reach the end of
  the file before the 20th kill (on 2026-12-01 in CI, seed 219677, a time kill 0.5 s after
  start-up let the run through the file, and it completed after 17 kills).

Then ERP B must equal ERP A entry for entry: the ledger (every column but ``created_at``, in
item/seq order), the line states (every column but ``updated_at``), and the outbox records
of ``billing.transactions``, ``billing.exceptions`` and ``billing.dlq`` (topic, key and
payload less its wall-clock fields, in outbox order per topic). ``recon.snapshots`` are
taken at most every few seconds per key by the wall clock, so their number depends on timing
in any run: they are compared as the latest record per key (what a compacted topic keeps),
with the ``recon_snapshots`` table — figures and ``source_position`` label (the change that
last dirtied the key when it was flushed). The label was left out for a while: in 1 of 4
runs before the ordering stage's re-delivery fix it named an earlier change than the
uninterrupted run's, with the same figures; with the label compared, 14 of 14 runs passed
on 2026-11-30 and 30 of 30 on 2026-12-01 (fresh seeds), so it is compared again
(ARCHITECTURE.md, known issues).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from tests.replay.capture import write_capture
from tests.replay.erp import LEDGER, LINES, OUTBOX, payload, rows

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 3000  # changes of the synthetic firm: ~5,000 records with transaction markers
KILLS = 20
SNAPSHOT_S = 0.1  # seconds between snapshots: a kill loses at most this much of the file
BATCH = 200  # records read at a time at most (uneven: 1 to BATCH, ~0.1 s of work on average)
RUN_TIMEOUT_S = 120.0  # one start of the flow; a stuck one fails the test, with its log
POLL_S = 0.01
# kinds of kill point and their shares: once the ledger holds a random number of entries
# (one per stratum of the file, so these kills walk through it), then a random moment more
# (mid-batch, mid-snapshot, mid-ERP-transaction); a random time after the flow started (often
# in the replay of what the last snapshot did not cover); during start-up
KINDS = (("ledger", 0.6), ("time", 0.3), ("startup", 0.1))
LEDGER_SPAN = 0.9  # ledger thresholds lie below this share of the uninterrupted ledger
EXTRA_S = 0.15  # the random moment more after a ledger threshold, at most
TIME_S = 0.6  # a time kill: at most this long after the flow started
STARTUP_S = (0.2, 2.5)  # a start-up kill: this long after the spawn

EXACT_TOPICS = ("billing.transactions", "billing.exceptions", "billing.dlq")


@dataclass(frozen=True)
class Point:
    """Where to kill one start: ``kind`` (see :data:`KINDS`), the ledger threshold (ledger
    kills) and the seconds (after the threshold, after the flow started, after the spawn)."""

    kind: str
    seconds: float
    ledger: int = 0
    ceiling: int = 0  # killed at once when the ledger holds this many entries (0: none)

    def __str__(self) -> str:
        at = f"ledger>={self.ledger}+" if self.kind == "ledger" else f"{self.kind}+"
        return f"{at}{self.seconds:.2f}s"


def kill_points(rng: random.Random, ledger: int) -> list[Point]:
    """:data:`KILLS` fresh points; ``ledger``: entries of the uninterrupted run.

    The i-th point's ceiling is i/KILLS of the span: whatever its kind, a start cannot carry
    the ledger past it, so the run is still short of the end of the file at the last kill
    (none for a ledger point whose threshold lies above: its extra moment is short).
    """
    kinds = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS], k=KILLS)
    n = kinds.count("ledger")
    span = LEDGER_SPAN * ledger
    thresholds = iter(sorted(1 + int(span * (i + rng.random()) / n) for i in range(n)))
    points = [
        Point("ledger", rng.uniform(0, EXTRA_S), next(thresholds)) if kind == "ledger"
        else Point("time", rng.uniform(0, TIME_S)) if kind == "time"
        else Point("startup", rng.uniform(*STARTUP_S))
        for kind in kinds
    ]  # fmt: skip
    ceilings = (1 + int(span * (i + 1) / KILLS) for i in range(KILLS))
    return [
        replace(p, ceiling=c if c > p.ledger else 0) for p, c in zip(points, ceilings, strict=True)
    ]


@dataclass
class Start:
    """One start of the flow: how it ended and how long its dataflow ran."""

    killed: bool
    flow_s: float  # from the writer lock taken to the exit or the kill (0: never took it)
    ledger: int | None = None  # ledger entries when it ended (None: unknown)


class Replay:
    """``billsync run --from-file`` of one capture into one ERP, with one recovery store."""

    def __init__(self, tmp: Path, capture: Path, name: str) -> None:
        self.db = tmp / f"{name}.sqlite3"
        self.log = tmp / f"{name}.log"
        recovery = tmp / f"{name}.recovery"
        self.args = [sys.executable, "-m", "ops.cli", "run", "--from-file", str(capture),
                     "--erp-url", f"sqlite:///{self.db}", "--recovery-dir", str(recovery),
                     "--snapshot-interval", str(SNAPSHOT_S), "--batch-size", str(BATCH),
                     "--uneven-batches"]  # fmt: skip
        self.env = {**os.environ, "BILLSYNC_STACK_DIR": str(tmp / "no-stack"),
                    "PYTHONPATH": str(ROOT)}  # fmt: skip

    def start(self, point: Point | None) -> Start:
        """Run once: SIGKILL at ``point``, or (None) let it finish."""
        with self.log.open("ab") as log:
            log.write(f"--- start, kill at {point}\n".encode())
            log.flush()
            proc = subprocess.Popen(self.args, cwd=ROOT, env=self.env, stdout=log, stderr=log)  # noqa: S603  # our own CLI
        try:
            return self._watch(proc, point)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def _watch(self, proc: subprocess.Popen[bytes], point: Point | None) -> Start:
        spawned = time.monotonic()
        began: float | None = None  # the flow holds the ERP
        due: float | None = spawned + point.seconds if point and point.kind == "startup" else None
        while True:
            now = time.monotonic()
            if now - spawned > RUN_TIMEOUT_S:
                raise AssertionError(f"the flow did not end in {RUN_TIMEOUT_S}s:\n{self.tail()}")
            code = proc.poll()
            if code is not None:
                assert code == 0, f"the flow exited {code}:\n{self.tail()}"
                return Start(False, now - began if began else 0.0, self.ledger())
            if began is None and self._holds_erp(proc.pid):
                began = now
                if point is not None and point.kind == "time":
                    due = now + point.seconds
            if (
                began is not None
                and point is not None
                and (point.kind == "ledger" or point.ceiling)
            ):
                held = self.ledger() or 0  # one read of the ERP per poll
                if due is None and point.kind == "ledger" and held >= point.ledger:
                    due = now + point.seconds
                if point.ceiling and held >= point.ceiling:
                    due = now  # the ceiling: see kill_points
            if due is not None and now >= due:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return Start(True, now - began if began else 0.0, self.ledger())
            time.sleep(POLL_S)

    def ledger(self) -> int | None:
        row = _query_one(self.db, "SELECT count(*) FROM erp_billing_transactions")
        return None if row is None else int(row[0])

    def _holds_erp(self, pid: int) -> bool:
        """The flow's ERP sink took the writer lock (its row names the holder's pid)."""
        row = _query_one(self.db, "SELECT pid FROM erp_writer_lock")
        return row is not None and row[0] == pid

    def tail(self) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in text if '"dead_letter"' not in line)[-4000:] or "-"


def _query_one(db: Path, sql: str) -> tuple[Any, ...] | None:
    if not db.exists():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2) as conn:
            return conn.execute(sql).fetchone()  # type: ignore[no-any-return]
    except sqlite3.OperationalError:  # no table yet, or the writer holds the lock
        return None


# --- the ERP, read for comparison ---------------------------------------------------------


def erp_state(db: Path) -> dict[str, list[Any]]:
    """What must be identical, as lists of comparable entries per part."""
    outbox = rows(db, OUTBOX)
    state: dict[str, list[Any]] = {"ledger": rows(db, LEDGER), "line state": rows(db, LINES)}
    for topic in EXACT_TOPICS:
        state[f"outbox {topic}"] = [
            {"key": r["key"], **payload(r["payload"])} for r in outbox if r["topic"] == topic
        ]
    latest: dict[bytes, dict[str, Any]] = {}
    for r in outbox:
        if r["topic"] == "recon.snapshots":
            latest[r["key"]] = payload(r["payload"])
    state["outbox recon.snapshots (latest per key)"] = sorted(
        latest.values(), key=lambda p: (p["project_id"], p["period"])
    )
    state["recon_snapshots"] = rows(db, "SELECT * FROM recon_snapshots ORDER BY project_id, period")
    return state


def differences(want: dict[str, list[Any]], have: dict[str, list[Any]]) -> Iterator[str]:
    """Per part that differs: the counts and the first differing entries, readable."""
    for part, a in want.items():
        b = have[part]
        if a == b:
            continue
        at = next(
            (i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b))
        )
        lines = [f"{part}: {len(a)} entries uninterrupted, {len(b)} killed; first difference "
                 f"at entry {at}:"]  # fmt: skip
        for i in range(at, min(at + 3, max(len(a), len(b)))):
            x, y = (a[i] if i < len(a) else None), (b[i] if i < len(b) else None)
            if x == y:
                continue
            lines.append(f"  [{i}] uninterrupted: {_brief(x, y)}")
            lines.append(f"  [{i}] killed:        {_brief(y, x)}")
        yield "\n".join(lines)


def _brief(entry: Any, other: Any) -> str:
    """An entry with the fields that differ from ``other`` first (all of them if no
    counterpart)."""
    if not isinstance(entry, dict):
        return str(entry)
    if not isinstance(other, dict):
        return str(entry)
    keys = [k for k in entry if entry.get(k) != other.get(k)]
    ident = {k: entry[k] for k in ("source_type", "source_id", "seq", "event", "key")
             if k in entry}  # fmt: skip
    return f"{ident} differs in {{{', '.join(f'{k}: {entry.get(k)!r}' for k in keys)}}}"


# --- the test ------------------------------------------------------------------------------


def test_killed_twenty_times_the_replay_posts_what_an_uninterrupted_one_does(
    tmp_path: Path,
) -> None:
    seed = int(os.environ.get("BILLSYNC_REPLAY_SEED") or random.randrange(10**6))
    rng = random.Random(seed)
    print(f"seed {seed} (BILLSYNC_REPLAY_SEED={seed} replays these kill points)")
    began = time.monotonic()
    capture = tmp_path / "capture.jsonl"
    records = write_capture(capture, events=EVENTS, seed=seed % 1000)
    print(f"capture: {records} records")

    a = Replay(tmp_path, capture, "uninterrupted")
    whole = a.start(None)
    assert whole.ledger, f"the uninterrupted run posted nothing:\n{a.tail()}"
    print(f"uninterrupted: {whole.ledger} ledger entries, the flow ran {whole.flow_s:.2f}s "
          f"({time.monotonic() - began:.0f}s so far)")  # fmt: skip

    b = Replay(tmp_path, capture, "killed")
    starts: list[Start] = []
    points = kill_points(rng, whole.ledger)
    for point in points:
        starts.append(b.start(point))
        if not starts[-1].killed:
            break
    kills = sum(s.killed for s in starts)
    if starts[-1].killed:
        starts.append(b.start(None))
    print(f"killed {kills} times (point -> ledger entries then): "
          + ", ".join(f"{p} -> {s.ledger}" for p, s in zip(points, starts, strict=False))
          + f"; {len(starts)} starts, test {time.monotonic() - began:.0f}s")  # fmt: skip
    assert kills == KILLS, (
        f"the run completed after {kills} kills (seed {seed}): the kill points let it finish "
        f"too early\n{b.tail()}"
    )
    want, have = erp_state(a.db), erp_state(b.db)
    diffs = list(differences(want, have))
    assert not diffs, f"seed {seed}: killed != uninterrupted\n" + "\n".join(diffs)
