"""``billsync run --processes N`` waits for its processes as one cluster (``supervise``).

Children here are small Python processes standing in for the Bytewax ones: one that stops
on its own — a stall exit 75, a death by SIGKILL — stops the others and its status is the
command's, whichever child it is; a SIGTERM to the command stops them all with status 0.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from ops.run.service import supervise

SLEEPER = "import time; time.sleep(60)"


def _child(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])  # noqa: S603  # inline test script


def test_a_stall_exit_of_the_second_process_stops_the_first_and_is_returned() -> None:
    children = [_child(SLEEPER), _child("import sys, time; time.sleep(0.3); sys.exit(75)")]
    began = time.monotonic()
    assert supervise(children, poll_s=0.05) == 75
    assert time.monotonic() - began < 10
    assert children[0].returncode == -signal.SIGTERM  # stopped, not left running


def test_a_process_killed_by_a_signal_is_reported_as_a_shell_does() -> None:
    die = "import os, signal, time; time.sleep(0.3); os.kill(os.getpid(), signal.SIGKILL)"
    children = [_child(SLEEPER), _child(die)]
    assert supervise(children, poll_s=0.05) == 128 + signal.SIGKILL
    assert children[0].returncode == -signal.SIGTERM


def test_sigterm_to_the_command_stops_every_process_cleanly() -> None:
    children = [_child(SLEEPER), _child(SLEEPER)]
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    before = signal.getsignal(signal.SIGTERM)
    timer.start()
    try:
        assert supervise(children, poll_s=0.05) == 0
    finally:
        timer.cancel()
    assert [c.returncode for c in children] == [-signal.SIGTERM, -signal.SIGTERM]
    assert signal.getsignal(signal.SIGTERM) == before  # the handler is given back
