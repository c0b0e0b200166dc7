"""The source tables on the real PostgreSQL and MariaDB of the local stack.

``billsync db init`` runs on the real databases (it is idempotent). Rows a test writes carry
its own ``it-<uuid>`` keys and are removed afterwards. The bulk load is exercised without
touching the shared tables: PSA into a private schema, CRM into session-temporary tables.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import StaticPool
from sqlalchemy.schema import CreateTable

from billsync.settings import Settings
from connectors.engines import crm_engine, psa_engine
from connectors.sources import crm_metadata
from ops.sourcedb.generate import build
from ops.sourcedb.install import init_psa
from ops.sourcedb.load import CRM_ORDER, load_crm, load_psa

pytestmark = pytest.mark.integration


def billsync(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  # fixed interpreter and our own CLI
        [sys.executable, "-c", "from ops.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="module")
def psa(stack: Settings) -> Iterator[Engine]:
    engine = psa_engine(stack)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def crm(stack: Settings) -> Iterator[Engine]:
    engine = crm_engine(stack)
    yield engine
    engine.dispose()


def test_init_is_idempotent_and_complete() -> None:
    first = billsync("db", "init", "--json")
    assert first.returncode == 0, first.stderr
    second = billsync("db", "init", "--json")
    assert second.returncode == 0, second.stderr
    rows = {(r["source"], r["table"]): r for r in json.loads(second.stdout)}
    assert all(r["exists"] for r in rows.values())
    assert set(rows) == {
        *(("psa", t) for t in ("employees", "projects", "timesheets", "milestones")),
        *(("crm", t) for t in ("accounts", "contracts", "contract_rates", "contract_amendments")),
        ("psa", "debezium_signal"),
        ("psa", "debezium_heartbeat"),
        ("crm", "debezium_signal"),
        # the erp connector's tables (SPEC 2b): the period calendar, its signal and heartbeat
        ("erp", "accounting_periods"),
        ("erp", "debezium_signal"),
        ("erp", "debezium_heartbeat"),
    }
    for table in ("employees", "projects", "timesheets", "milestones"):
        assert rows[("psa", table)]["replica_identity"] == "full"
    assert rows[("erp", "accounting_periods")]["replica_identity"] == "full"


def test_checks_refuse_what_the_source_systems_refuse(psa: Engine, crm: Engine) -> None:
    key = f"it-{uuid.uuid4().hex[:12]}"
    with pytest.raises(DBAPIError, match="ck_timesheets_status"), psa.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO timesheets (timesheet_id, employee_id, project_id, work_date, "
                "hours, status) VALUES (-424242, :k, :k, '2025-07-01', 8, 'paid')"
            ),
            {"k": key},
        )
    with pytest.raises(DBAPIError, match="ck_contracts_contract_type"), crm.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO contracts (contract_id, account_id, contract_number, contract_type,"
                " currency, start_date) VALUES (:k, :k, :k, 'fixed_fee', 'EUR', '2025-01-01')"
            ),
            {"k": key},
        )


def test_updated_at_is_stamped_when_the_writer_leaves_it(psa: Engine, crm: Engine) -> None:
    key = f"it-{uuid.uuid4().hex[:12]}"
    old = "2020-01-01 00:00:00+00"
    try:
        with psa.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO employees (employee_id, name, email, cost_center, legal_entity,"
                    " updated_at) VALUES (:k, 'It Test', 'it@example.test', 'CC-1', 'BS-UK-LTD',"
                    " :old)"
                ),
                {"k": key, "old": old},
            )
            conn.execute(
                text("UPDATE employees SET name = 'It Ü' WHERE employee_id = :k"), {"k": key}
            )
            stamped = conn.execute(
                text("SELECT updated_at > '2024-01-01' FROM employees WHERE employee_id = :k"),
                {"k": key},
            ).scalar_one()
            assert stamped
        with crm.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO accounts (account_id, name, tax_jurisdiction, currency, "
                    "updated_at) VALUES (:k, 'It', 'GB', 'GBP', '2020-01-01 00:00:00')"
                ),
                {"k": key},
            )
            conn.execute(
                text("UPDATE accounts SET name = 'It 2' WHERE account_id = :k"), {"k": key}
            )
            assert conn.execute(
                text("SELECT updated_at > '2024-01-01' FROM accounts WHERE account_id = :k"),
                {"k": key},
            ).scalar_one()
    finally:
        with psa.begin() as conn:
            conn.execute(text("DELETE FROM employees WHERE employee_id = :k"), {"k": key})
        with crm.begin() as conn:
            conn.execute(text("DELETE FROM accounts WHERE account_id = :k"), {"k": key})


def test_bulk_load_round_trips_every_row(stack: Settings) -> None:
    settings = stack
    data = build(0.3, 7)
    schema = f"it_{uuid.uuid4().hex[:12]}"
    psa = psa_engine(settings, connect_args={"options": f"-csearch_path={schema}"})
    # one connection for the whole test: the CRM tables below are session-temporary
    crm = crm_engine(settings, poolclass=StaticPool)
    try:
        with psa.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
        init_psa(psa)
        with crm.begin() as conn:
            for table in CRM_ORDER:  # same DDL, CHECKs included, shadowing the real table
                ddl = str(CreateTable(crm_metadata.tables[table]).compile(dialect=crm.dialect))
                conn.execute(text(ddl.replace("CREATE TABLE", "CREATE TEMPORARY TABLE", 1)))
        noop = lambda table, rows: None  # noqa: E731
        stats = load_crm(crm, data, noop, 50) + load_psa(psa, data, noop, 1_000)
        lines = list(data.timesheets())
        loaded = {s.table: s.rows for s in stats}
        assert loaded["timesheets"] == len(lines)
        with psa.connect() as conn:
            count, hours, approved = conn.execute(
                text(
                    "SELECT count(*), sum(hours), count(*) FILTER (WHERE status = 'approved') "
                    "FROM timesheets"
                )
            ).one()
            assert count == len(lines)
            assert hours == sum((r[4] for r in lines), Decimal(0))
            assert approved == sum(1 for r in lines if r[6] == "approved")
            note = conn.execute(
                text("SELECT notes FROM timesheets WHERE notes LIKE '%''%' LIMIT 1")
            ).scalar_one()
            assert "'" in note
        with crm.connect() as conn:
            for table in CRM_ORDER:
                n = conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
                assert n == len(data.tables[table]) == loaded[table]
            caps = conn.execute(text("SELECT sum(cap_amount) FROM contracts")).scalar_one()
            assert caps == sum((r[8] for r in data.tables["contracts"] if r[8]), Decimal(0))
            first = data.tables["accounts"][0]
            stamp = conn.execute(
                text("SELECT updated_at FROM accounts WHERE account_id = :k"), {"k": first[0]}
            ).scalar_one()
            assert stamp == first[5].replace(tzinfo=None)  # UTC in, UTC out
    finally:
        with psa.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        psa.dispose()
        crm.dispose()
