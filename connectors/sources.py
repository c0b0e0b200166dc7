"""SQLAlchemy metadata of the source tables (SPEC section 1) and Debezium's support tables.

Column names and types are the contract; the PSA and CRM applications write these tables.
Primary keys are supplied by the writer: no ``GENERATED ALWAYS``, no autoincrement.
There are no foreign keys: the PSA and CRM applications check references themselves, and the
billing rules (SPEC 2, rules 4 and 6) must see rows that reference unknown parents.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects import mysql

from sinks.erp import tables as erp_tables

PSA_TABLES = ("employees", "projects", "timesheets", "milestones")
CRM_TABLES = ("accounts", "contracts", "contract_rates", "contract_amendments")
SIGNAL_TABLE = "debezium_signal"
HEARTBEAT_TABLE = "debezium_heartbeat"

PROJECT_STATUSES = ("active", "on_hold", "closed")
TIMESHEET_STATUSES = ("draft", "submitted", "approved", "rejected")
MILESTONE_STATUSES = ("planned", "completed", "accepted", "cancelled")
CONTRACT_TYPES = ("time_and_materials", "milestone", "retainer")
CONTRACT_STATUSES = ("draft", "active", "suspended", "terminated")
CAP_PERIODS = ("contract", "month")
AMENDMENT_STATUSES = ("pending", "approved", "rejected")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _check(table: str, column: str, values: tuple[str, ...]) -> CheckConstraint:
    return CheckConstraint(_in(column, values), name=f"ck_{table}_{column}")


# --- PSA: PostgreSQL, database psa, schema public ------------------------------------------

psa_metadata = MetaData(schema=None)

_PG_NOW = text("now()")


def _pg_updated_at() -> Column[object]:
    return Column("updated_at", DateTime(timezone=True), nullable=False, server_default=_PG_NOW)


employees = Table(
    "employees",
    psa_metadata,
    Column("employee_id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("email", Text, nullable=False),
    Column("labor_category", Text, nullable=True),
    Column("cost_center", Text, nullable=False),
    Column("legal_entity", Text, nullable=False),
    Column("active", Boolean, nullable=False, server_default=text("true")),
    _pg_updated_at(),
)

projects = Table(
    "projects",
    psa_metadata,
    Column("project_id", Text, primary_key=True),
    Column("code", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("account_id", Text, nullable=False),
    Column("contract_id", Text, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'active'")),
    Column("legal_entity", Text, nullable=False),
    _pg_updated_at(),
    _check("projects", "status", PROJECT_STATUSES),
    Index("ix_projects_contract_id", "contract_id"),
    Index("ix_projects_account_id", "account_id"),
)

timesheets = Table(
    "timesheets",
    psa_metadata,
    Column("timesheet_id", BigInteger, primary_key=True, autoincrement=False),
    Column("employee_id", Text, nullable=False),
    Column("project_id", Text, nullable=False),
    Column("work_date", Date, nullable=False),
    Column("hours", Numeric(5, 2), nullable=False),
    Column("billable", Boolean, nullable=False, server_default=text("true")),
    Column("status", Text, nullable=False, server_default=text("'draft'")),
    Column("approved_at", DateTime(timezone=True), nullable=True),
    # free text; the PSA stores NULL when nothing was typed
    Column("notes", Text, nullable=True),
    _pg_updated_at(),
    _check("timesheets", "status", TIMESHEET_STATUSES),
    Index("ix_timesheets_project_id_work_date", "project_id", "work_date"),
    Index("ix_timesheets_employee_id_work_date", "employee_id", "work_date"),
    Index("ix_timesheets_status", "status"),
)

milestones = Table(
    "milestones",
    psa_metadata,
    Column("milestone_id", Text, primary_key=True),
    Column("project_id", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("amount", Numeric(14, 2), nullable=False),
    Column("due_date", Date, nullable=False),
    Column("status", Text, nullable=False, server_default=text("'planned'")),
    Column("accepted_at", DateTime(timezone=True), nullable=True),
    _pg_updated_at(),
    _check("milestones", "status", MILESTONE_STATUSES),
    Index("ix_milestones_project_id", "project_id"),
)


def signal_table(metadata: MetaData, **options: Any) -> Table:
    """Debezium's signal table (incremental snapshots; ``signal.data.collection``)."""
    return Table(
        SIGNAL_TABLE,
        metadata,
        Column("id", String(64), primary_key=True),
        Column("type", String(32), nullable=False),
        Column("data", Text, nullable=True),
        **options,
    )


def heartbeat_table(metadata: MetaData) -> Table:
    """What a PostgreSQL connector's ``heartbeat.action.query`` writes, so its slot advances."""
    return Table(
        HEARTBEAT_TABLE,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=False),
        Column("beat_at", DateTime(timezone=True), nullable=False, server_default=_PG_NOW),
    )


psa_signal = signal_table(psa_metadata)
psa_heartbeat = heartbeat_table(psa_metadata)

# The four PSA tables get REPLICA IDENTITY FULL and a trigger that stamps updated_at on an
# update that does not set it (what MariaDB's ON UPDATE does for the CRM): see install.py.
PSA_FULL_IDENTITY = PSA_TABLES

# --- CRM: MariaDB, database crm ------------------------------------------------------------

crm_metadata = MetaData()

_ID = 64  # varchar length of every CRM identifier
# TIMESTAMP(6): stored in UTC, so Debezium reports an unambiguous zoned timestamp; ON UPDATE
# keeps updated_at current when the CRM application does not set it.
_MARIA_UPDATED_AT = text("CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)")


def _crm_updated_at() -> Column[object]:
    return Column(
        "updated_at",
        mysql.TIMESTAMP(fsp=6),
        nullable=False,
        server_default=_MARIA_UPDATED_AT,
    )


_MARIA_OPTS: dict[str, Any] = {"mariadb_engine": "InnoDB", "mariadb_charset": "utf8mb4"}

accounts = Table(
    "accounts",
    crm_metadata,
    Column("account_id", String(_ID), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("tax_jurisdiction", String(16), nullable=False),
    Column("currency", mysql.CHAR(3), nullable=False),
    Column("erp_customer_id", String(_ID), nullable=True),
    _crm_updated_at(),
    CheckConstraint("CHAR_LENGTH(currency) = 3", name="ck_accounts_currency"),
    **_MARIA_OPTS,
)

contracts = Table(
    "contracts",
    crm_metadata,
    Column("contract_id", String(_ID), primary_key=True),
    Column("account_id", String(_ID), nullable=False),
    Column("contract_number", String(32), nullable=False),
    Column("contract_type", String(32), nullable=False),
    Column("status", String(16), nullable=False, server_default=text("'draft'")),
    Column("currency", mysql.CHAR(3), nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=True),
    Column("cap_amount", Numeric(14, 2), nullable=True),
    Column("cap_period", String(16), nullable=False, server_default=text("'contract'")),
    Column("retainer_hours_monthly", Numeric(8, 2), nullable=True),
    _crm_updated_at(),
    _check("contracts", "contract_type", CONTRACT_TYPES),
    _check("contracts", "status", CONTRACT_STATUSES),
    _check("contracts", "cap_period", CAP_PERIODS),
    CheckConstraint("CHAR_LENGTH(currency) = 3", name="ck_contracts_currency"),
    CheckConstraint("cap_amount IS NULL OR cap_amount >= 0", name="ck_contracts_cap_amount"),
    CheckConstraint(
        "retainer_hours_monthly IS NULL OR retainer_hours_monthly >= 0",
        name="ck_contracts_retainer_hours_monthly",
    ),
    CheckConstraint("end_date IS NULL OR end_date >= start_date", name="ck_contracts_term"),
    Index("ix_contracts_account_id", "account_id"),
    Index("uq_contracts_contract_number", "contract_number", unique=True),
    **_MARIA_OPTS,
)

contract_rates = Table(
    "contract_rates",
    crm_metadata,
    Column("rate_id", String(_ID), primary_key=True),
    Column("contract_id", String(_ID), nullable=False),
    Column("labor_category", String(64), nullable=False),
    Column("hourly_rate", Numeric(10, 2), nullable=False),
    Column("effective_from", Date, nullable=False),
    Column("effective_to", Date, nullable=True),
    CheckConstraint("hourly_rate >= 0", name="ck_contract_rates_hourly_rate"),
    CheckConstraint(
        "effective_to IS NULL OR effective_to >= effective_from",
        name="ck_contract_rates_effective",
    ),
    Index("ix_contract_rates_lookup", "contract_id", "labor_category", "effective_from"),
    **_MARIA_OPTS,
)

contract_amendments = Table(
    "contract_amendments",
    crm_metadata,
    Column("amendment_id", String(_ID), primary_key=True),
    Column("contract_id", String(_ID), nullable=False),
    Column("status", String(16), nullable=False, server_default=text("'pending'")),
    Column("effective_date", Date, nullable=False),
    _crm_updated_at(),
    _check("contract_amendments", "status", AMENDMENT_STATUSES),
    Index("ix_contract_amendments_contract_id_status", "contract_id", "status"),
    **_MARIA_OPTS,
)

crm_signal = signal_table(crm_metadata, **_MARIA_OPTS)

# --- ERP: PostgreSQL, database erp, schema public: what the erp connector captures ----------
# accounting_periods is an ERP table (sinks/erp/tables.py; copied here so `db init` and
# `db status` show it with the connector's support tables). The erp connector captures it
# with its own signal and heartbeat tables: see ops/sourcedb/install.py init_erp.

erp_capture_metadata = MetaData()
erp_accounting_periods = erp_tables.accounting_periods.to_metadata(erp_capture_metadata)
erp_signal = signal_table(erp_capture_metadata)
erp_heartbeat = heartbeat_table(erp_capture_metadata)
ERP_CAPTURED = (erp_accounting_periods.name, SIGNAL_TABLE, HEARTBEAT_TABLE)
