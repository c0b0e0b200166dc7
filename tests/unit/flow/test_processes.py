"""Two Bytewax processes (two workers each) end in the same ERP state as one worker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sqlalchemy import create_engine

from ops.run.ports import free_cluster_ports
from tests.unit.flow.test_flow import RUNNERS, ledger_sums, run, state_rows

ROOT = Path(__file__).resolve().parents[3]


def test_two_processes_equal_one_worker(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'procs.sqlite3'}"
    base = free_cluster_ports(2)  # below the ephemeral range: ops/run/ports.py
    addresses = ",".join(f"127.0.0.1:{base + i}" for i in range(2))
    procs = [
        subprocess.Popen(  # noqa: S603  # this test's own helper module
            [sys.executable, "-m", "tests.unit.flow.two_processes", url, addresses, str(i)],
            cwd=ROOT,
        )
        for i in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    one = run(tmp_path, RUNNERS["one_worker"], "one")
    two = create_engine(url)
    assert state_rows(two) == state_rows(one)
    assert ledger_sums(two) == ledger_sums(one)
