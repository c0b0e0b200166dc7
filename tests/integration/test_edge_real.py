"""The typed edge on real Debezium events: one PSA table (milestones) and one CRM table
(contract_rates), through real connectors, Kafka and the registry.

Why: the unit tests build Debezium-shaped schemas by hand; this proves the edge reads what
Debezium 3 + the Apicurio converter really write (schema annotations, decimal scale, zoned
timestamps, dates, source blocks, tombstones). Each test registers throwaway copies of the
shipped templates (unique prefix), changes one row of its own, and cleans up.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from sqlalchemy import Engine, text

from billsync.change import Change, Op, Tombstone
from billsync.model import ContractRate, Milestone
from billsync.settings import Settings
from connectors.connect_client import ConnectClient
from connectors.registration import register
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.cdc.schemas import RegistrySchemaSource
from tests.integration.connector_copies import cleanup, write_copy

TIMEOUT_S = 120.0


@pytest.fixture
def connect(stack: Settings) -> Iterator[ConnectClient]:
    with ConnectClient(stack.connect_url) as client:
        yield client


@pytest.fixture
def decoder(stack: Settings) -> Iterator[ChangeDecoder]:
    source = RegistrySchemaSource(stack.schema_registry_url)
    yield ChangeDecoder(source)
    source.close()


def _consume_until(
    stack: Settings,
    topic: str,
    decoder: ChangeDecoder,
    done: Callable[[list[Change | Tombstone]], bool],
) -> list[Change | Tombstone]:
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": f"it_edge_{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    seen: list[Change | Tombstone] = []
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while time.monotonic() < deadline and not done(seen):
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            seen.append(
                decoder.decode(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value())
            )
    finally:
        consumer.close()
    assert done(seen), f"{topic}: only {len(seen)} events within {TIMEOUT_S}s"
    return seen


def _of_key(events: list[Change | Tombstone], key: str) -> list[Change]:
    return [e for e in events if isinstance(e, Change) and e.key == key]


def _has_cycle(key: str) -> Callable[[list[Change | Tombstone]], bool]:
    def done(events: list[Change | Tombstone]) -> bool:
        ops = [e.op for e in _of_key(events, key)]
        return Op.DELETE in ops and isinstance(events[-1], Tombstone)

    return done


def test_psa_milestones_decode_typed(
    stack: Settings,
    connect: ConnectClient,
    decoder: ChangeDecoder,
    psa_engine: Engine,
    tmp_path: Path,
    unique_name: Callable[[str], str],
    kafka_admin: Any,
    pg_superuser: Callable[[str], Any],
) -> None:
    name = unique_name("edge_psa")
    key = f"MS-{name}"
    write_copy(tmp_path, "psa", name, tables=["milestones"])
    snap = f"{key}-snap"  # a row of our own for the initial snapshot (a fresh stack has none)
    with psa_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO milestones (milestone_id, project_id, name, amount, due_date, "
                "status) VALUES (:k, 'PRJ-X', 'snapshot', 10.50, '2025-04-30', 'planned')"
            ),
            {"k": snap},
        )
    try:
        register(name, stack, connect, directory=tmp_path, timeout_s=180)
        accepted = datetime(2025, 3, 31, 22, 30, 15, 123456, tzinfo=UTC)
        with psa_engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO milestones (milestone_id, project_id, name, amount, due_date, "
                    "status) VALUES (:k, 'PRJ-X', :n, 1234567.89, '2025-04-30', 'planned')"
                ),
                {"k": key, "n": "Zoë's phase — 第一"},
            )
        with psa_engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE milestones SET status = 'accepted', accepted_at = :a, amount = 0.10 "
                    "WHERE milestone_id = :k"
                ),
                {"k": key, "a": accepted},
            )
        with psa_engine.begin() as conn:
            conn.execute(text("DELETE FROM milestones WHERE milestone_id = :k"), {"k": key})

        events = _consume_until(stack, f"{name}.public.milestones", decoder, _has_cycle(key))
        snapshot = [e for e in events if isinstance(e, Change) and e.op is Op.READ]
        assert snapshot and all(isinstance(e.after, Milestone) for e in snapshot)
        assert all(e.after is not None and e.after.amount is not None for e in snapshot)
        assert all(e.after.amount.as_tuple().exponent == -2 for e in snapshot if e.after)

        created, updated, deleted = _of_key(events, key)
        assert (created.op, updated.op, deleted.op) == (Op.CREATE, Op.UPDATE, Op.DELETE)
        assert created.after == Milestone(
            milestone_id=key,
            project_id="PRJ-X",
            name="Zoë's phase — 第一",
            amount=Decimal("1234567.89"),
            due_date=date(2025, 4, 30),
            status="planned",
            accepted_at=None,
            updated_at=created.after.updated_at if created.after else None,
        )
        assert created.after is not None and created.after.updated_at is not None
        assert created.after.updated_at.tzinfo is not None
        assert updated.before == created.after  # REPLICA IDENTITY FULL: full before image
        assert updated.after is not None and updated.after.accepted_at == accepted
        assert str(updated.after.amount) == "0.10"
        assert deleted.after is None and deleted.before is not None and deleted.is_delete
        for change in (created, updated, deleted):
            assert change.position.source == name
            assert change.position.lsn is not None and change.position.tx_id is not None
            assert change.source_ts is not None and change.source_ts.tzinfo is not None
        assert created.position < updated.position < deleted.position
        tombstone = events[-1]
        assert isinstance(tombstone, Tombstone) and tombstone.key
    finally:
        with psa_engine.begin() as conn:
            conn.execute(
                text("DELETE FROM milestones WHERE milestone_id IN (:k, :s)"), {"k": key, "s": snap}
            )
        cleanup(connect, name, kafka_admin=kafka_admin, pg_superuser=pg_superuser)


def test_crm_contract_rates_decode_typed(
    stack: Settings,
    connect: ConnectClient,
    decoder: ChangeDecoder,
    crm_engine: Engine,
    tmp_path: Path,
    unique_name: Callable[[str], str],
    kafka_admin: Any,
) -> None:
    name = unique_name("edge_crm")
    key = f"RATE-{name}"
    write_copy(tmp_path, "crm", name, tables=["contract_rates"])
    snap = f"{key}-snap"  # a row of our own for the initial snapshot (a fresh stack has none)
    with crm_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contract_rates (rate_id, contract_id, labor_category, "
                "hourly_rate, effective_from, effective_to) "
                "VALUES (:k, 'CON-X', 'ANALYST', 10.00, '2025-01-01', NULL)"
            ),
            {"k": snap},
        )
    try:
        register(name, stack, connect, directory=tmp_path, timeout_s=180)
        with crm_engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO contract_rates (rate_id, contract_id, labor_category, "
                    "hourly_rate, effective_from, effective_to) "
                    "VALUES (:k, 'CON-X', 'ANALYST', 99999999.99, '2025-01-01', NULL)"
                ),
                {"k": key},
            )
        with crm_engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE contract_rates SET hourly_rate = 150.05, effective_to = '2025-12-31' "
                    "WHERE rate_id = :k"
                ),
                {"k": key},
            )
        with crm_engine.begin() as conn:
            conn.execute(text("DELETE FROM contract_rates WHERE rate_id = :k"), {"k": key})

        events = _consume_until(stack, f"{name}.crm.contract_rates", decoder, _has_cycle(key))
        snapshot = [e for e in events if isinstance(e, Change) and e.op is Op.READ]
        assert snapshot and all(isinstance(e.after, ContractRate) for e in snapshot)

        created, updated, deleted = _of_key(events, key)
        assert created.after == ContractRate(
            rate_id=key,
            contract_id="CON-X",
            labor_category="ANALYST",
            hourly_rate=Decimal("99999999.99"),
            effective_from=date(2025, 1, 1),
            effective_to=None,
        )
        assert updated.before == created.after
        assert updated.after is not None and str(updated.after.hourly_rate) == "150.05"
        assert updated.after.effective_to == date(2025, 12, 31)
        assert deleted.before is not None and deleted.after is None
        for change in (created, updated, deleted):
            pos = change.position
            assert pos.source == name and pos.file and pos.pos is not None and pos.lsn is None
            assert change.source_ts is not None and change.source_ts.tzinfo is not None
        assert isinstance(events[-1], Tombstone)
    finally:
        with crm_engine.begin() as conn:
            conn.execute(
                text("DELETE FROM contract_rates WHERE rate_id IN (:k, :s)"), {"k": key, "s": snap}
            )
        cleanup(connect, name, kafka_admin=kafka_admin)
