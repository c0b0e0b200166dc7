"""The ERP sink keeps going when the outbox cannot be published (broker/registry restarting).

Found by chaos test_02: with the broker down, ``OutboxRelay.flush`` raised ``DeliveryError``
inside ``write_batch``, the flow died, and ``close`` raising again aborted the process (the
error was never printed). Now the rows stay in the outbox and the relay is retried later.
Real parts: SQLite ERP, the real relay and ``CheckedProducer`` pointed at closed ports.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, func, select

from sinks.erp import sink as sink_mod
from sinks.erp import tables as t
from sinks.erp.sink import _ErpPartition
from sinks.kafka.outbox import OutboxRelay
from sinks.kafka.producer import CheckedProducer

NOW = datetime(2025, 4, 1, tzinfo=UTC)


@pytest.fixture
def engine() -> Iterator[Engine]:
    e = create_engine("sqlite://")
    yield e
    e.dispose()


def dead(offset: int) -> dict[str, object]:
    return {
        "error": "BadFraming: test",
        "error_type": "BadFraming",
        "topic": "psa.public.timesheets",
        "partition": 0,
        "offset": offset,
        "key": None,
        "value": b"\xde\xad",
        "timestamp": None,
    }


def outbox_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        n: int = conn.execute(select(func.count()).select_from(t.billing_outbox)).scalar_one()
        return n


def test_undeliverable_outbox_is_kept_and_the_sink_goes_on(engine: Engine) -> None:
    producer = CheckedProducer("127.0.0.1:1", "http://127.0.0.1:1", timeout_s=1)
    part = _ErpPartition(engine, OutboxRelay(engine, producer), 3600.0, lambda: NOW)
    before = sink_mod.RELAY_FAILURES._value.get()  # prometheus_client exposes no public getter
    part.write_batch([dead(1)])  # must not raise
    assert outbox_rows(engine) == 1
    assert sink_mod.RELAY_FAILURES._value.get() == before + 1
    part.write_batch([dead(2)])  # within the retry pause: no second attempt, rows kept
    assert outbox_rows(engine) == 2
    assert sink_mod.RELAY_FAILURES._value.get() == before + 1
    part.close()  # tries once more, does not raise
    assert outbox_rows(engine) == 2


def test_close_after_the_erp_went_away_does_not_raise(engine: Engine) -> None:
    """Found by chaos test_02 (PostgreSQL restart): close() raising while Bytewax unwinds
    aborted the process and hid the original error."""
    part = _ErpPartition(engine, None, 3600.0, lambda: NOW)
    t.recon_dirty.drop(engine)  # the ERP is unusable now
    part.close()


def test_idle_timer_snapshots_reconciliation_without_new_batches(tmp_path: Path) -> None:
    from dataflows.billing.target import LineTarget, LineUpdate, SourceType, State
    from dataflows.emissions import Emission

    # a file database: an in-memory SQLite is private to each thread's connection
    engine = create_engine(f"sqlite:///{tmp_path / 'erp.sqlite3'}")

    line = LineTarget(
        SourceType.TIMESHEET, "1", State.HELD, "PROJECT_ON_HOLD", "C1", "P1", "2025-03"
    )
    part = _ErpPartition(engine, None, 0.3, lambda: NOW, idle_flush=True)
    try:
        part.write_batch([Emission(LineUpdate(line.key, None, line), "p1")])  # recon due: runs
        changed = LineTarget(
            SourceType.TIMESHEET, "1", State.HELD, "AMENDMENT_PENDING", "C1", "P1", "2025-03"
        )
        part.write_batch([Emission(LineUpdate(line.key, line, changed), "p2")])  # not due yet
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(t.recon_dirty)).scalar() == 1
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                if conn.execute(select(func.count()).select_from(t.recon_dirty)).scalar() == 0:
                    break
            time.sleep(0.1)
        with engine.connect() as conn:  # the idle timer flushed it: no third batch came
            assert conn.execute(select(func.count()).select_from(t.recon_dirty)).scalar() == 0
    finally:
        part.close()
