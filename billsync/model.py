"""Typed source rows: SPEC section 1, one frozen value class per table.

These are what the CDC edge (``dataflows/cdc``) decodes Debezium rows into and what the
billing core (``dataflows/billing``) reads. Column names are the contract; a column that a
source adds later is ignored here (it is not part of the contract). Amounts and hours are
``Decimal``; timestamps are timezone-aware ``datetime``; dates are ``date``. Fields that the
writer may leave NULL are optional: the core treats a missing reference as unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import ClassVar

# --- PSA (PostgreSQL, database psa, schema public) ---------------------------------------


# One frozen class per source table (SPEC 1): their fields repeat in shape because the
# tables do; a generic row type would lose the typed fields the billing rules read.
@dataclass(frozen=True, slots=True)
class Employee:
    TABLE: ClassVar[str] = "employees"
    employee_id: str
    name: str | None = None
    email: str | None = None
    labor_category: str | None = None
    cost_center: str | None = None
    legal_entity: str | None = None
    active: bool | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.employee_id


@dataclass(frozen=True, slots=True)
class Project:
    TABLE: ClassVar[str] = "projects"
    project_id: str
    code: str | None = None
    name: str | None = None
    account_id: str | None = None
    contract_id: str | None = None
    status: str | None = None  # active | on_hold | closed
    legal_entity: str | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.project_id


@dataclass(frozen=True, slots=True)
class Timesheet:
    TABLE: ClassVar[str] = "timesheets"
    timesheet_id: int
    employee_id: str | None = None
    project_id: str | None = None
    work_date: date | None = None
    hours: Decimal | None = None
    billable: bool | None = None
    status: str | None = None  # draft | submitted | approved | rejected
    approved_at: datetime | None = None
    notes: str | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return str(self.timesheet_id)


@dataclass(frozen=True, slots=True)
class Milestone:
    TABLE: ClassVar[str] = "milestones"
    milestone_id: str
    project_id: str | None = None
    name: str | None = None
    amount: Decimal | None = None
    due_date: date | None = None
    status: str | None = None  # planned | completed | accepted | cancelled
    accepted_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.milestone_id


# --- CRM (MariaDB, database crm) -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Account:
    TABLE: ClassVar[str] = "accounts"
    account_id: str
    name: str | None = None
    tax_jurisdiction: str | None = None
    currency: str | None = None
    erp_customer_id: str | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.account_id


@dataclass(frozen=True, slots=True)
class Contract:
    TABLE: ClassVar[str] = "contracts"
    contract_id: str
    account_id: str | None = None
    contract_number: str | None = None
    contract_type: str | None = None  # time_and_materials | milestone | retainer
    status: str | None = None  # draft | active | suspended | terminated
    currency: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    cap_amount: Decimal | None = None
    cap_period: str | None = None  # contract | month
    retainer_hours_monthly: Decimal | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.contract_id


@dataclass(frozen=True, slots=True)
class ContractRate:
    TABLE: ClassVar[str] = "contract_rates"
    rate_id: str
    contract_id: str | None = None
    labor_category: str | None = None
    hourly_rate: Decimal | None = None
    effective_from: date | None = None
    effective_to: date | None = None

    @property
    def key(self) -> str:
        return self.rate_id


@dataclass(frozen=True, slots=True)
class ContractAmendment:
    TABLE: ClassVar[str] = "contract_amendments"
    amendment_id: str
    contract_id: str | None = None
    status: str | None = None  # pending | approved | rejected
    effective_date: date | None = None
    updated_at: datetime | None = None

    @property
    def key(self) -> str:
        return self.amendment_id


# --- ERP (PostgreSQL, database erp, schema public): finance's period calendar (SPEC 2b) -----


@dataclass(frozen=True, slots=True)
class AccountingPeriod:
    TABLE: ClassVar[str] = "accounting_periods"
    period: str  # YYYY-MM
    status: str | None = None  # open | closed (a period with no row is open)
    closed_at: datetime | None = None
    closed_by: str | None = None
    reopened_at: datetime | None = None
    reopen_reason: str | None = None

    @property
    def key(self) -> str:
        return self.period


Row = (
    Employee
    | Project
    | Timesheet
    | Milestone
    | Account
    | Contract
    | ContractRate
    | ContractAmendment
    | AccountingPeriod
)

ROW_TYPES: dict[str, type[Row]] = {
    t.TABLE: t
    for t in (
        Employee,
        Project,
        Timesheet,
        Milestone,
        Account,
        Contract,
        ContractRate,
        ContractAmendment,
        AccountingPeriod,
    )
}
PSA_TABLES = ("employees", "projects", "timesheets", "milestones")
CRM_TABLES = ("accounts", "contracts", "contract_rates", "contract_amendments")
ERP_TABLES = ("accounting_periods",)
