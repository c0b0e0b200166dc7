"""Source table DDL: SPEC section 1 columns and types, writer-supplied keys, CHECKs."""

from __future__ import annotations

import pytest
from sqlalchemy import CheckConstraint, Table, create_mock_engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable

from connectors import sources as t
from ops.sourcedb.generate import COLUMNS

MARIADB = create_mock_engine("mariadb+pymysql://", lambda *a, **k: None).dialect
PG = postgresql.dialect()

SPEC_COLUMNS = {
    "employees": "employee_id name email labor_category cost_center legal_entity active updated_at",
    "projects": "project_id code name account_id contract_id status legal_entity updated_at",
    "timesheets": "timesheet_id employee_id project_id work_date hours billable status "
    "approved_at notes updated_at",
    "milestones": "milestone_id project_id name amount due_date status accepted_at updated_at",
    "accounts": "account_id name tax_jurisdiction currency erp_customer_id updated_at",
    "contracts": "contract_id account_id contract_number contract_type status currency "
    "start_date end_date cap_amount cap_period retainer_hours_monthly updated_at",
    "contract_rates": "rate_id contract_id labor_category hourly_rate effective_from effective_to",
    "contract_amendments": "amendment_id contract_id status effective_date updated_at",
}
NULLABLE = {
    "employees.labor_category", "timesheets.approved_at", "timesheets.notes",
    "milestones.accepted_at", "accounts.erp_customer_id", "contracts.end_date",
    "contracts.cap_amount", "contracts.retainer_hours_monthly", "contract_rates.effective_to",
}  # fmt: skip


def _table(name: str) -> Table:
    md = t.psa_metadata if name in t.PSA_TABLES else t.crm_metadata
    return md.tables[name]


@pytest.mark.parametrize("name", list(SPEC_COLUMNS))
def test_columns_are_the_contract(name: str) -> None:
    table = _table(name)
    assert [c.name for c in table.columns] == SPEC_COLUMNS[name].split()
    assert list(COLUMNS[name]) == SPEC_COLUMNS[name].split()  # the seed writes them all
    nullable = {f"{name}.{c.name}" for c in table.columns if c.nullable}
    assert nullable == {n for n in NULLABLE if n.startswith(f"{name}.")}


@pytest.mark.parametrize("name", list(SPEC_COLUMNS))
def test_keys_are_supplied_by_the_writer(name: str) -> None:
    table = _table(name)
    dialect = PG if name in t.PSA_TABLES else MARIADB
    ddl = str(CreateTable(table).compile(dialect=dialect)).upper()
    assert len(table.primary_key.columns) == 1
    for word in ("SERIAL", "GENERATED", "AUTO_INCREMENT", "IDENTITY"):
        assert word not in ddl


def test_types_follow_the_spec() -> None:
    ts = str(CreateTable(_table("timesheets")).compile(dialect=PG))
    assert "timesheet_id BIGINT" in ts and "hours NUMERIC(5, 2)" in ts
    assert "approved_at TIMESTAMP WITH TIME ZONE" in ts and "work_date DATE" in ts
    ms = str(CreateTable(_table("milestones")).compile(dialect=PG))
    assert "amount NUMERIC(14, 2)" in ms
    ct = str(CreateTable(_table("contracts")).compile(dialect=MARIADB))
    assert "currency CHAR(3)" in ct and "cap_amount NUMERIC(14, 2)" in ct
    assert "retainer_hours_monthly NUMERIC(8, 2)" in ct
    assert "ON UPDATE CURRENT_TIMESTAMP(6)" in ct and "TIMESTAMP(6)" in ct
    rates = str(CreateTable(_table("contract_rates")).compile(dialect=MARIADB))
    assert "hourly_rate NUMERIC(10, 2)" in rates


def _checks(name: str) -> str:
    return " ".join(
        str(c.sqltext) for c in _table(name).constraints if isinstance(c, CheckConstraint)
    )


def test_status_enums_are_checked() -> None:
    assert "'on_hold'" in _checks("projects")
    assert "'rejected'" in _checks("timesheets") and "'submitted'" in _checks("timesheets")
    assert "'accepted'" in _checks("milestones")
    contracts = _checks("contracts")
    for value in ("time_and_materials", "retainer", "milestone", "suspended", "month"):
        assert f"'{value}'" in contracts
    assert "'pending'" in _checks("contract_amendments")


def test_debezium_support_tables() -> None:
    for md in (t.psa_metadata, t.crm_metadata):
        signal = md.tables["debezium_signal"]
        assert [c.name for c in signal.columns] == ["id", "type", "data"]
        assert signal.c.data.nullable and not signal.c.type.nullable
    beat = t.psa_metadata.tables["debezium_heartbeat"]
    assert [c.name for c in beat.columns] == ["id", "beat_at"]
    assert "debezium_heartbeat" not in t.crm_metadata.tables


@pytest.mark.parametrize("dialect_name", ["postgresql", "mariadb"])
def test_all_ddl_compiles(dialect_name: str) -> None:
    md, dialect = (
        (t.psa_metadata, PG) if dialect_name == "postgresql" else (t.crm_metadata, MARIADB)
    )
    for table in md.sorted_tables:
        assert str(CreateTable(table).compile(dialect=dialect))
        for index in table.indexes:
            assert str(CreateIndex(index).compile(dialect=dialect))
