"""A process spawned by ``billsync run --processes N`` stops when its parent dies.

``ops.run.service.exit_with_parent`` (Linux ``PR_SET_PDEATHSIG``): a parent here spawns a
child the way ``spawn_processes`` does, is SIGKILLed, and the child must be gone soon after;
without the hook it would sleep on (the orphaned Bytewax processes of a killed cluster kept
the ERP writer lock and the cluster's ports).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PARENT = """
import subprocess, sys, time
from ops.run.service import exit_with_parent
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         preexec_fn=exit_with_parent if sys.argv[1] == "hook" else None)
print(child.pid, flush=True)
time.sleep(60)
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by init) counts as gone
    stat = Path(f"/proc/{pid}/stat")
    return not stat.exists() or stat.read_text().split()[2] != "Z"


def _child_after_parent_killed(mode: str) -> bool:
    """Spawn a parent (and its child), SIGKILL the parent: is the child alive 5 s later?"""
    parent = subprocess.Popen(  # noqa: S603  # our own interpreter and inline script
        [sys.executable, "-c", PARENT, mode], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _alive(child):
        time.sleep(0.05)
    alive = _alive(child)
    if alive:
        os.kill(child, signal.SIGKILL)
    return alive


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_the_child_stops_when_its_parent_is_killed() -> None:
    assert not _child_after_parent_killed("hook")


@pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")
def test_without_the_hook_the_child_is_orphaned() -> None:
    """The control: the test can fail (an orphan lives on)."""
    assert _child_after_parent_killed("none")
