"""One writer per ERP: a second ``billsync run`` on the same SQLite ERP is refused at start,
and the refusal names the first (host, pid, start time)."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine

from ops.run.runner import refuse_second_writer
from sinks.erp import writer_lock
from sinks.erp.sink import ErpSink
from sinks.erp.writer_lock import WriterLock, WriterLockedError, check

STARTED = datetime(2026, 4, 1, 8, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_lock, "GRACE_S", 0.0)  # refuse at once in these tests


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'erp.sqlite3'}"


@pytest.fixture
def engines(url: str) -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for e in made:
        e.dispose()


def sink(url: str, engines: list[Engine]) -> ErpSink:
    def factory() -> Engine:
        engines.append(create_engine(url))
        return engines[-1]

    return ErpSink(factory, single_writer=True, clock=lambda: STARTED)


def test_a_second_writer_is_refused_naming_the_first(url: str, engines: list[Engine]) -> None:
    first = sink(url, engines).build_part("erp_out", "erp", None)
    with pytest.raises(WriterLockedError) as refused:
        sink(url, engines).build_part("erp_out", "erp", None)
    message = str(refused.value)
    assert f"host {socket.gethostname()}, pid {os.getpid()}" in message
    assert "since 2026-04-01T08:30:00+00:00" in message
    assert "erp.sqlite3" in message
    with pytest.raises(WriterLockedError, match=f"pid {os.getpid()}"):
        refuse_second_writer(url)  # what `billsync run` checks before it starts the flow
    first.close()
    second = sink(url, engines).build_part("erp_out", "erp", None)  # free again after close
    second.close()
    refuse_second_writer(url)


def test_the_probe_takes_nothing_and_the_lock_is_released_once(url: str) -> None:
    engine = create_engine(url)
    try:
        check(engine)
        check(engine)  # probes do not refuse each other
        lock = WriterLock.acquire(engine)
        with pytest.raises(WriterLockedError):
            check(engine)
        lock.release()
        lock.release()  # idempotent
        check(engine)
    finally:
        engine.dispose()


def test_an_in_memory_erp_needs_no_lock() -> None:
    engine = create_engine("sqlite://")
    try:
        one, two = WriterLock.acquire(engine), WriterLock.acquire(engine)
        one.release()
        two.release()
    finally:
        engine.dispose()


def test_a_lock_freed_within_the_grace_period_is_taken(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run restarted right after kill -9 may find the old holder not yet gone."""
    engine = create_engine(url)
    try:
        held = WriterLock.acquire(engine)
        threading.Timer(0.3, held.release).start()
        monkeypatch.setattr(writer_lock, "GRACE_S", 5.0)
        WriterLock.acquire(engine).release()
    finally:
        engine.dispose()


def test_release_never_raises(url: str) -> None:
    """The sink releases from ``close``, which must not raise (a dead PostgreSQL session)."""

    def dead_session() -> None:
        raise ConnectionError("server closed the connection unexpectedly")

    engine = create_engine(url)
    try:
        WriterLock(engine, dead_session).release()
    finally:
        engine.dispose()
