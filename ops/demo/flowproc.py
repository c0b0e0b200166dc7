"""Run ``billsync run`` in the background for the demo, tracked by a pid file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from billsync.errors import StackError
from billsync.settings import Settings


def _pid_file(settings: Settings) -> Path:
    return settings.stack_dir / "flow.pid"


def log_file(settings: Settings) -> Path:
    return settings.stack_dir / "logs" / "flow.log"


def running_pid(settings: Settings) -> int | None:
    path = _pid_file(settings)
    if not path.exists():
        return None
    pid = int(path.read_text().strip())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        path.unlink(missing_ok=True)
        return None
    return pid


def start(settings: Settings) -> int:
    """Start the flow detached (it outlives the demo command); idempotent."""
    pid = running_pid(settings)
    if pid is not None:
        return pid
    log = log_file(settings)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(  # our own CLI with fixed arguments
            [sys.executable, "-m", "ops.cli", "run"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    time.sleep(2)
    if proc.poll() is not None:
        raise StackError("flow", f"billsync run exited with {proc.returncode}", str(log))
    _pid_file(settings).write_text(str(proc.pid))
    return proc.pid


def stop(settings: Settings, timeout_s: float = 30.0) -> bool:
    pid = running_pid(settings)
    if pid is None:
        return False
    os.kill(pid, signal.SIGINT)  # Bytewax stops its workers on an interrupt
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.kill(pid, signal.SIGKILL)  # recovery makes a hard stop safe
    _pid_file(settings).unlink(missing_ok=True)
    return True
