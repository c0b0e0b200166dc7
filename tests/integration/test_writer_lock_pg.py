"""The ERP writer lock on the stack's PostgreSQL: a session advisory lock per ERP schema.

Not run by the unit tier (it needs the stack): ``pytest tests/integration/test_writer_lock_pg.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from billsync.settings import Settings
from sinks.erp import writer_lock
from sinks.erp.writer_lock import WriterLock, WriterLockedError, check
from tests.integration.erp_schema import erp_schema

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import sys, time
from sqlalchemy import create_engine
from sinks.erp.writer_lock import WriterLock
WriterLock.acquire(create_engine(sys.argv[1]))
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture(autouse=True)
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_lock, "GRACE_S", 0.0)


def test_a_second_session_is_refused_naming_the_first(
    stack: Settings, unique_name: Callable[[str], str]
) -> None:
    with erp_schema(stack, unique_name("lock")) as (_url, engine):
        first = WriterLock.acquire(engine)
        with pytest.raises(WriterLockedError, match=f"pid {os.getpid()}"):
            WriterLock.acquire(engine)  # another session (connection) of the same ERP
        with pytest.raises(WriterLockedError):
            check(engine)
        first.release()
        check(engine)
        WriterLock.acquire(engine).release()


def test_other_schemas_of_one_database_do_not_interfere(
    stack: Settings, unique_name: Callable[[str], str]
) -> None:
    with (
        erp_schema(stack, unique_name("lock_a")) as (_a, one),
        erp_schema(stack, unique_name("lock_b")) as (_b, two),
    ):
        a, b = WriterLock.acquire(one), WriterLock.acquire(two)
        a.release()
        b.release()


def test_a_killed_holder_frees_the_lock(
    stack: Settings, unique_name: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with erp_schema(stack, unique_name("lock_kill")) as (url, engine):
        holder = subprocess.Popen(  # noqa: S603  # our own interpreter and script
            [sys.executable, "-c", HOLD, url], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        try:
            assert holder.stdout is not None
            # the holder's log lines (structlog writes to stdout) come before its "held"
            lines: list[str] = []
            while len(lines) < 20 and (not lines or lines[-1] != "held"):
                lines.append(holder.stdout.readline().strip())
            assert lines[-1] == "held", lines
            with pytest.raises(WriterLockedError, match=f"pid {holder.pid}"):
                check(engine)
        finally:
            holder.kill()
            holder.wait(30)
        monkeypatch.setattr(writer_lock, "GRACE_S", 10.0)  # the server notices the dead socket
        began = time.monotonic()
        WriterLock.acquire(engine).release()
        assert time.monotonic() - began < 10
