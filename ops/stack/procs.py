"""Detached processes of the local stack: spawn, pid files, liveness, stop, memory.

A pid file holds the pid *and* the process start time (field 22 of ``/proc/<pid>/stat``), so a
recycled pid is never mistaken for ours: ``down`` stops exactly the processes ``up`` started.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PidRecord:
    pid: int
    start_ticks: int
    argv0: str


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    # the command name (field 2) is in parentheses and may contain spaces
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _reap(pid: int) -> None:
    """Collect the exit status if ``pid`` is our own child, so it does not linger as a zombie."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(record: PidRecord) -> bool:
    _reap(record.pid)
    fields = _stat_fields(record.pid)
    if fields is None:
        return False
    return fields[0] not in ("Z", "X") and int(fields[19]) == record.start_ticks


def spawn(
    argv: Sequence[str],
    *,
    log_file: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> PidRecord:
    """Start ``argv`` in a new session (it outlives the CLI), output appended to ``log_file``."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        proc = subprocess.Popen(  # noqa: S603  # argv is built by the launcher, never from input
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
            user=user,
            group=user,
            close_fds=True,
        )
    ticks = start_ticks(proc.pid) or 0
    record = PidRecord(proc.pid, ticks, os.path.basename(argv[0]))
    pid_file.write_text(json.dumps(record.__dict__) + "\n", encoding="utf-8")
    return record


def read(pid_file: Path) -> PidRecord | None:
    try:
        data = json.loads(pid_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return PidRecord(int(data["pid"]), int(data["start_ticks"]), str(data.get("argv0", "")))


def stop(record: PidRecord, *, sig: int = signal.SIGTERM, timeout: float = 60.0) -> bool:
    """Signal the process and wait for it to exit; SIGKILL after ``timeout``. True if it ran."""
    if not is_alive(record):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(record):
            return True
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(record.pid, signal.SIGKILL)
    while is_alive(record):
        time.sleep(0.1)
    return True


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            tree.setdefault(int(fields[1]), []).append(int(entry.name))
    return tree


def rss_bytes(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants (PostgreSQL runs one process per backend)."""
    tree = _children()
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text(encoding="utf-8").splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        todo.extend(tree.get(current, []))
    return total
