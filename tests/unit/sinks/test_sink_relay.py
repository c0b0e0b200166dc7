"""The ERP sink keeps going when the outbox cannot be published (broker/registry restarting).

Found by chaos test_02: with the broker down, ``OutboxRelay.flush`` raised ``DeliveryError``
inside ``write_batch``, the flow died, and ``close`` raising again aborted the process (the
error was never printed). Now the rows stay in the outbox and the relay is retried later.
Real parts: SQLite ERP, the real relay and ``CheckedProducer`` pointed at closed ports.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

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
