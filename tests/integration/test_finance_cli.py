"""The finance and analyst commands on the real stack, each test with its own ERP schema and
its own topics: recon tail/report, exceptions list/explain, dlq list/replay, audit runs."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.serialization import MessageField, SerializationContext
from sqlalchemy import Engine, insert, select

from billsync.settings import Settings
from ops.reads.queries.tables import ensure, recon_audit_runs
from ops.topics.replay import REPLAY_HEADER
from schemas.registry import KEY_SCHEMA, schema_str
from schemas.serdes import avro_serializer
from sinks.erp import tables as t
from tests.integration.erp_schema import erp_schema
from tests.unit.queries.erp import line, snapshot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def erp(stack: Settings, unique_name: Callable[[str], str]) -> Iterator[tuple[str, Engine]]:
    with erp_schema(stack, unique_name("fin")) as (url, engine):
        t.metadata.create_all(engine)
        ensure(engine)
        yield url, engine


def cli(erp_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ERP_DB_URL": erp_url, "COLUMNS": "200"}
    return subprocess.run(  # noqa: S603  # our own CLI, fixed arguments
        [sys.executable, "-m", "ops.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def produce(stack: Settings, registry: Any, topic: str, schema_of: str, records: list[Any]) -> None:
    """Avro records (key, value) to ``topic`` with the schema of billsync topic ``schema_of``."""
    values = avro_serializer(registry, schema_str(schema_of))
    keys = avro_serializer(registry, KEY_SCHEMA)
    producer = Producer({"bootstrap.servers": stack.kafka_bootstrap, "acks": "all"})
    for key, value in records:
        producer.produce(
            topic,
            key=None if key is None else keys(key, SerializationContext(topic, MessageField.KEY)),
            value=values(value, SerializationContext(topic, MessageField.VALUE)),
        )
    assert producer.flush(30) == 0


def raw_messages(stack: Settings, topic: str, expect: int, timeout_s: float = 20) -> list[Any]:
    """Every message of partition 0: read until ``expect`` arrived and one poll came back
    empty (so an extra message would show), or until the timeout."""
    consumer = Consumer(
        {"bootstrap.servers": stack.kafka_bootstrap, "group.id": f"it-{uuid.uuid4().hex}"}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        batch = [m for m in consumer.consume(10, 1.0) if m.error() is None]
        out += batch
        if len(out) >= expect and not batch:
            break
    consumer.close()
    return out


def test_recon_tail_once_shows_the_latest_value_per_key(
    stack: Settings, registry: Any, erp: tuple[str, Engine], unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("recon")
    old = snapshot("P1", "2026-03", "100.00", "0.00", as_of=datetime(2026, 3, 1, tzinfo=UTC))
    new = snapshot("P1", "2026-03", "250.50", "0.00")
    other = snapshot("P2", "2026-03", "7.00", "1.00")
    produce(
        stack,
        registry,
        topic,
        "recon.snapshots",
        [("P1|2026-03", old), ("P2|2026-03", other), ("P1|2026-03", new)],
    )
    done = cli(erp[0], "recon", "tail", "--once", "--json", "--topic", topic)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["project_id"], r["billed_amount"]) for r in rows] == [
        ("P1", "250.50"),
        ("P2", "7.00"),
    ]
    only = cli(erp[0], "recon", "tail", "--json", "--project", "P2", "--topic", topic)
    assert [r["project_id"] for r in json.loads(only.stdout)] == ["P2"]


def test_exceptions_list_and_recon_report_read_the_erp(erp: tuple[str, Engine]) -> None:
    url, engine = erp
    with engine.begin() as conn:
        conn.execute(
            insert(t.billing_line_state),
            [
                line("1", "held", "PROJECT_ON_HOLD"),
                line("2", "exception", "NO_RATE"),
                line("3", "billed", None, billed_amount=Decimal("10.00")),
            ],
        )
        conn.execute(insert(t.recon_snapshots), [snapshot("P1", "2026-03", "960.00", "0.30")])
    listed = cli(url, "exceptions", "list", "--json", "--reason", "PROJECT_ON_HOLD")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [(r["source_id"], r["state"], r["source_position"]) for r in rows] == [
        ("1", "held", "psa:lsn=1")
    ]
    assert rows[0]["age_s"] > 0
    report = cli(url, "recon", "report", "--format", "csv", "--period", "2026-03")
    assert report.returncode == 0, report.stderr
    parsed = list(csv.DictReader(io.StringIO(report.stdout)))
    assert parsed[0]["project_id"] == "P1" and parsed[0]["billed_amount"] == "960.00"
    live = json.loads(cli(url, "recon", "report", "--live", "--json").stdout)
    assert live["rows"][0]["held_count"] == 1 and live["rows"][0]["exception_count"] == 1


@pytest.fixture
def own_timesheet(psa_engine: Engine) -> Iterator[int]:
    """An approved timesheet of this test's own (project and employee too) in the real PSA,
    so the test needs no seed data; deleted afterwards."""
    from connectors import sources as src

    tag = uuid.uuid4().hex[:8]
    ts_id = 8_000_000_000 + int(tag, 16) % 100_000_000
    project, employee = f"it-fin-{tag}-P", f"it-fin-{tag}-E"
    with psa_engine.begin() as conn:
        conn.execute(
            insert(src.employees).values(
                employee_id=employee,
                name="It Fin",
                email="it@example.com",
                labor_category="CONSULTANT",
                cost_center="CC-IT",
                legal_entity="DE01",
            )
        )
        conn.execute(
            insert(src.projects).values(
                project_id=project,
                code=tag,
                name="it",
                account_id=f"it-fin-{tag}-A",
                contract_id=f"it-fin-{tag}-C",
                status="active",
                legal_entity="DE01",
            )
        )
        conn.execute(
            insert(src.timesheets).values(
                timesheet_id=ts_id,
                employee_id=employee,
                project_id=project,
                work_date=datetime(2026, 3, 2, tzinfo=UTC).date(),
                hours=Decimal("8.00"),
                billable=True,
                status="approved",
                approved_at=datetime(2026, 3, 3, tzinfo=UTC),
            )
        )
    yield ts_id
    with psa_engine.begin() as conn:
        conn.execute(src.timesheets.delete().where(src.timesheets.c.timesheet_id == ts_id))
        conn.execute(src.projects.delete().where(src.projects.c.project_id == project))
        conn.execute(src.employees.delete().where(src.employees.c.employee_id == employee))


def test_explain_reads_the_real_sources(erp: tuple[str, Engine], own_timesheet: int) -> None:
    some = own_timesheet
    done = cli(erp[0], "exceptions", "explain", str(some), "--json")
    assert done.returncode == 0, done.stderr
    ex = json.loads(done.stdout)
    assert ex["item"]["timesheet_id"] == some
    assert 2 <= ex["rule"] <= 15 and ex["path"]
    assert ex["target"] is not None and ex["line_state"] is None  # fresh ERP schema
    assert "projects" in {r["table"] for r in ex["rows"]}


def test_audit_records_its_run(erp: tuple[str, Engine], own_timesheet: int) -> None:
    url, engine = erp
    done = cli(url, "recon", "audit", "--json")
    assert done.returncode == 1  # an empty ERP differs from the sources
    with engine.connect() as conn:
        runs = conn.execute(select(recon_audit_runs)).mappings().all()
    assert len(runs) == 1 and runs[0]["differences"] == len(json.loads(done.stdout)["differences"])


def test_dlq_replay_republishes_what_now_decodes_and_refuses_the_rest(
    stack: Settings,
    registry: Any,
    erp: tuple[str, Engine],
    unique_name: Callable[[str], str],
    own_timesheet: int,
) -> None:
    url, _ = erp
    good = raw_messages(stack, "psa.public.timesheets", 1, timeout_s=60)[0]
    dlq = unique_name("dlq")
    target = f"{unique_name('rp')}.public.timesheets"  # a topic no flow reads
    now = datetime.now(UTC)

    def letter(value: bytes, offset: int) -> dict[str, Any]:
        return {
            "error": "UnknownSchemaId: schema id was not in the registry",
            "error_type": "UnknownSchemaId",
            "topic": target,
            "partition": 0,
            "offset": offset,
            "key": good.key(),
            "value": value,
            "timestamp": None,
            "received_at": now,
        }

    poison = b"\x00\x7f\xff\xff\xf0garbage"  # a schema id nobody registered
    produce(
        stack,
        registry,
        dlq,
        "billing.dlq",
        [(None, letter(good.value(), 41)), (None, letter(poison, 42))],
    )
    listed = json.loads(cli(url, "dlq", "list", "--json", "--topic", dlq).stdout)
    assert [(r["offset"], r["error_type"], r["replayed"]) for r in listed] == [
        (41, "UnknownSchemaId", False),
        (42, "UnknownSchemaId", False),
    ]
    assert listed[0]["size"] == len(good.value())

    dry = cli(url, "dlq", "replay", "--all", "--dry-run", "--json", "--topic", dlq)
    assert [o["outcome"] for o in json.loads(dry.stdout)] == ["would_replay", "refused"]

    first = cli(url, "dlq", "replay", "--all", "--json", "--topic", dlq)
    assert first.returncode == 1  # one refused
    outcomes = json.loads(first.stdout)
    assert [o["outcome"] for o in outcomes] == ["replayed", "refused"]
    assert "UnknownSchemaId" in outcomes[1]["error"]
    published = raw_messages(stack, target, 1)
    assert len(published) == 1
    assert published[0].value() == good.value() and published[0].key() == good.key()
    assert dict(published[0].headers())[REPLAY_HEADER] == f"{dlq}:0:0".encode()

    again = cli(url, "dlq", "replay", "--offset", "0", "--json", "--topic", dlq)
    assert again.returncode == 0
    assert [o["outcome"] for o in json.loads(again.stdout)] == ["already_replayed"]
    assert len(raw_messages(stack, target, 1)) == 1
    listed = json.loads(cli(url, "dlq", "list", "--json", "--topic", dlq).stdout)
    assert [r["replayed"] for r in listed] == [True, False]
