"""A stall watchdog for ``billsync run``: exit (code 75) when the flow stops consuming.

Bytewax 0.21.1 was seen, rarely, to stop closing epochs while busy at 100 % CPU
(ARCHITECTURE.md, "Known issues"): nothing more is consumed or written. The watchdog exits
when no input partition closed an epoch for ``stall_s`` seconds (epochs close every snapshot
interval, idle or not; the partitions report it, ``ops/run/runner.py``) and the billing step
applied no unit and the writer wrote no batch meanwhile (one epoch can carry minutes of work
in a catch-up: the ordering stage releases a backlog of transactions when their ENDs are
read), or when records wait on a
partition the flow has read and nothing was decoded from that partition for ``stall_s``
(per partition: other partitions may go on, e.g. heartbeat transactions). It logs
``stall_detected``, then — when ``py-spy`` is installed (the ``dev`` extra; root or
``CAP_SYS_PTRACE``) — ``stall_stacks`` with every thread's Python and native stack
(``py-spy dump --native``: which operator holds the epoch, issue 12), and exits with
:data:`STALL_EXIT`, so the supervisor (systemd, compose ``restart:``) restarts it — a restart
is exact (Bytewax recovery + the ERP writer's diff). Partitions not read yet by this process
are not judged: their position is unknown here.

One policy with the ERP writer: while the ERP is unreachable the writer retries a batch for
``BILLSYNC_ERP_RETRY_S`` (300 s) and then stops the flow with the database error. That batch
holds the worker, so no epoch closes and nothing is decoded meanwhile — to the watchdog it
looks like a stall. Settings refuse ``BILLSYNC_STALL_EXIT_S`` not longer than the retry
(default 360 s), so an ERP outage ends in the writer's own, clearer failure (or in recovery
when the ERP comes back), never in a watchdog exit in the middle of the wait. The same holds
for every process of a ``--processes`` cluster: the rule is on the settings, not on a
signal one process would have to share.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from dataflows.progress import Progress

STALL_EXIT = 75  # EX_TEMPFAIL: try again
log = structlog.get_logger(__name__)


def waiting(progress: Progress, consumer: Consumer, idle_s: float = 0.0) -> dict[str, int]:
    """Records waiting beyond the last decoded offset, per partition the flow has read and
    has decoded nothing from for ``idle_s`` seconds (checked again after the broker's
    answer, so a partition read meanwhile is not reported)."""
    out: dict[str, int] = {}
    for key in list(progress.offsets):
        if time.monotonic() - progress.seen_at.get(key, 0.0) < idle_s:
            continue
        topic, partition = key
        try:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=5, cached=False
            )
        except KafkaException:
            continue  # broker restarting: not a stall of ours
        offset = progress.offsets[key]
        if high > offset + 1 and time.monotonic() - progress.seen_at.get(key, 0.0) >= idle_s:
            out[f"{topic}[{partition}]"] = high - offset - 1
    return out


def epoch_stall(progress: Progress, now: float, stall_s: float) -> float | None:
    """Seconds without an epoch close, when that is a stall; None otherwise. Epochs close every
    snapshot interval, idle or not — unless one epoch carries more work than that (a
    catch-up: the ordering stage releases a backlog of transactions at once): a flow that
    applied a unit or wrote a batch within ``stall_s`` is working, not stalled."""
    no_epoch = now - progress.epoch_at
    if no_epoch >= stall_s and now - progress.work_at >= stall_s:
        return no_epoch
    return None


def _py_spy() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")  # the venv's, whatever PATH says
    return str(beside) if beside.exists() else shutil.which("py-spy")


def dump_stacks(pid: int | None = None, timeout_s: float = 30.0) -> str | None:
    """Every thread's Python and native stack of process ``pid`` (this one by default), by
    ``py-spy dump --native``; None when py-spy is missing or cannot attach (not root, no
    ``CAP_SYS_PTRACE``). For the stall report: where the worker spins."""
    exe = _py_spy()
    if exe is None:
        return None
    try:
        res = subprocess.run(  # noqa: S603  # fixed argv: our py-spy, our own pid
            [exe, "dump", "--native", "--pid", str(pid or os.getpid())],
            capture_output=True, text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"py-spy failed: {e}"
    return res.stdout if res.returncode == 0 else f"py-spy exit {res.returncode}: {res.stderr}"


def _exit_stalled(**facts: object) -> None:
    log.error("stall_detected", **facts, exit=STALL_EXIT)
    stacks = dump_stacks()
    if stacks is not None:
        log.error("stall_stacks", stacks=stacks)
    os._exit(STALL_EXIT)  # the dataflow thread cannot be interrupted from here


def behind_now(bootstrap: str, progress: Progress, idle_s: float = 0.0) -> dict[str, int]:
    """:func:`waiting`, asked through a consumer made for this one check and closed after it.

    Not one consumer for the life of the process: a CI run of chaos 02 (2026-11-30) left
    the flow reading nothing from one partition after a broker restart, with records
    waiting there, and the watchdog did not fire; a watchdog that keeps a client of the
    same library across the same restart can share the failure it is there to see."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "billsync-watchdog"})
    try:
        return waiting(progress, consumer, idle_s)
    finally:
        consumer.close()


def start(bootstrap: str, progress: Progress, stall_s: float, every_s: float = 5.0) -> None:
    def run() -> None:
        while True:
            time.sleep(every_s)
            now = time.monotonic()
            no_epoch = epoch_stall(progress, now, stall_s)
            if no_epoch is not None:
                _exit_stalled(no_epoch_close_s=round(no_epoch))
            # per partition, not the whole flow: on 2026-12-01 (CI, chaos 02) the flow read
            # nothing more from crm.transaction after a broker restart while the heartbeat
            # transactions on psa.transaction were decoded every 10 s, so a flow-wide
            # "nothing decoded" never held and the watchdog never looked
            silent = {f"{t}[{p}]": now - at for (t, p), at in list(progress.seen_at.items())}
            if all(s < stall_s for s in silent.values()):
                continue
            behind = behind_now(bootstrap, progress, idle_s=stall_s)
            if behind:  # how long the waiting partitions have been silent, at the least
                _exit_stalled(idle_s=round(min(silent[k] for k in behind)), waiting=behind)

    threading.Thread(target=run, name="billsync-watchdog", daemon=True).start()
