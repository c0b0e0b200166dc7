"""Classification of one billing item against its context: SPEC section 2, rules 1-15.

:func:`classify_timesheet` and :func:`classify_milestone` return ``None`` (no line state), a
final :class:`~dataflows.billing.target.LineTarget` (held / exception / non_billable decided
by a rule) or a :class:`Candidate` that allocation (retainer, cap, tax) turns into a target.
The first rule that fires decides, in the exact order of the SPEC table.

Only the values the SPEC lists bill. Every value the SPEC lists keeps the SPEC's outcome; a
value it does not list (a status a CRM added, NULL in a column the SPEC does not mark NULL,
a currency that is not an ISO 4217 code) in a column a rule reads is the exception
``UNEXPECTED_SOURCE_VALUE``, decided at the place of the rule that reads the column, so every
earlier rule (and a SPEC outcome the value cannot change) keeps precedence. :class:`Unexpected`
names the column and the value; :func:`unexpected` recomputes it for an item (``billsync
explain``). The checks, in rule order:

====  ===================================================================================
rule  column (the values it may hold)
====  ===================================================================================
2     ``timesheets.hours`` NULL; ``milestones.amount`` NULL (before ``INVALID_AMOUNT``)
3     ``timesheets.billable`` NULL
5     ``projects.status`` (active, on_hold, closed)
7     ``contracts.status`` (draft, active, suspended, terminated)
8     ``contract_amendments.status`` (pending, approved, rejected) of any amendment of C,
      after ``AMENDMENT_PENDING``
9     ``timesheets.work_date`` / ``milestones.accepted_at`` NULL; ``contracts.start_date``
      NULL (after the ``end_date`` half of the term check, which it cannot change)
10    ``contracts.contract_type`` (time_and_materials, milestone, retainer); for a milestone
      at the paragraph's "contract of another type" check, before ``INVALID_AMOUNT``
12    ``contracts.currency``, then ``accounts.currency``: NULL or not three capital letters
14    a rate row of C for the labor category with ``effective_from`` NULL, or covering the
      day with ``hourly_rate`` NULL or negative (after ``AMBIGUOUS_RATE``, before ``NO_RATE``)
15    before a candidate is made: ``projects.legal_entity`` and (timesheets)
      ``employees.cost_center`` NULL (ledger dimensions); ``contracts.cap_period`` (contract,
      month) when ``cap_amount`` is set; ``retainer_hours_monthly`` negative on a retainer
====  ===================================================================================

Where the SPEC states the outcome for every other value, it stands: a timesheet whose status
is not ``approved`` and a milestone whose status is not ``accepted`` have no line state (rule
1, the milestone paragraph), whatever the value; ``labor_category`` and
``tax_jurisdiction`` NULL are ``UNMAPPED_*`` (rule 13); NULL ``end_date``, ``effective_to``,
``cap_amount``, ``erp_customer_id``, ``approved_at`` have the SPEC's meaning; NULL
``retainer_hours_monthly`` is 0 (SPEC) and a negative cap counts as 0 (everything held).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Protocol

from billsync.model import (
    Account,
    Contract,
    ContractAmendment,
    ContractRate,
    Employee,
    Milestone,
    Project,
    Timesheet,
)
from dataflows.billing.mappings import MILESTONE_CATEGORY, LaborMapping, Mappings
from dataflows.billing.money import ZERO, milestone_period, month_of, q2, utc_date
from dataflows.billing.target import LineTarget, ScheduleLine, SourceType, State


class Reason:
    """The exact reason strings of SPEC section 2 (billing_line_state.reason)."""

    INVALID_HOURS = "INVALID_HOURS"
    NOT_BILLABLE = "NOT_BILLABLE"
    PROJECT_UNKNOWN = "PROJECT_UNKNOWN"
    EMPLOYEE_UNKNOWN = "EMPLOYEE_UNKNOWN"
    PROJECT_ON_HOLD = "PROJECT_ON_HOLD"
    PROJECT_CLOSED = "PROJECT_CLOSED"
    CONTRACT_UNKNOWN = "CONTRACT_UNKNOWN"
    ACCOUNT_UNKNOWN = "ACCOUNT_UNKNOWN"
    CONTRACT_SUSPENDED = "CONTRACT_SUSPENDED"
    CONTRACT_INACTIVE = "CONTRACT_INACTIVE"
    AMENDMENT_PENDING = "AMENDMENT_PENDING"
    OUTSIDE_CONTRACT_TERM = "OUTSIDE_CONTRACT_TERM"
    MILESTONE_CONTRACT = "MILESTONE_CONTRACT"
    CUSTOMER_NOT_IN_ERP = "CUSTOMER_NOT_IN_ERP"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    UNMAPPED_LABOR_CATEGORY = "UNMAPPED_LABOR_CATEGORY"
    UNMAPPED_TAX_JURISDICTION = "UNMAPPED_TAX_JURISDICTION"
    NO_RATE = "NO_RATE"
    AMBIGUOUS_RATE = "AMBIGUOUS_RATE"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    COVERED_BY_RETAINER = "COVERED_BY_RETAINER"
    BILLING_CAP_EXCEEDED = "BILLING_CAP_EXCEEDED"
    # billsync's own (the SPEC is silent): a value the SPEC does not list, see the module doc
    UNEXPECTED_SOURCE_VALUE = "UNEXPECTED_SOURCE_VALUE"


# Bump when a change of these rules changes the target of rows that already exist: an engine
# restored from a snapshot of other rules then re-evaluates everything at start and emits the
# differences (BillingEngine.fingerprint). 2: UNEXPECTED_SOURCE_VALUE.
RULES_VERSION = 2

# the values SPEC section 1 lists for the columns the rules compare
PROJECT_STATUSES = frozenset({"active", "on_hold", "closed"})
CONTRACT_STATUSES = frozenset({"draft", "active", "suspended", "terminated"})
CONTRACT_TYPES = frozenset({"time_and_materials", "milestone", "retainer"})
CAP_PERIODS = frozenset({"contract", "month"})
AMENDMENT_STATUSES = frozenset({"pending", "approved", "rejected"})
_ISO_4217 = re.compile(r"[A-Z]{3}")


@dataclass(frozen=True, slots=True)
class Unexpected:
    """A source value the SPEC does not list, read by rule ``rule``: the item's exception."""

    rule: int  # 15: checked before a candidate is made (dimensions, allocation parameters)
    column: str  # table.column
    value: object  # None for NULL

    def __str__(self) -> str:
        value = self.value
        shown = "NULL" if value is None else repr(value) if isinstance(value, str) else str(value)
        return f"{self.column}={shown}"  # e.g. contracts.status='expired', accounts.currency=NULL


def _currency_ok(code: str | None) -> bool:
    """An ISO 4217 alphabetic code: three capital ASCII letters."""
    return code is not None and _ISO_4217.fullmatch(code) is not None


def contract_unexpected(contract: Contract) -> Unexpected | None:
    """The allocation parameters of ``contract`` the SPEC does not list (checked before 15)."""
    if contract.cap_amount is not None and contract.cap_period not in CAP_PERIODS:
        return Unexpected(15, "contracts.cap_period", contract.cap_period)
    allowance = contract.retainer_hours_monthly
    if contract.contract_type == "retainer" and allowance is not None and allowance < 0:
        return Unexpected(15, "contracts.retainer_hours_monthly", allowance)
    return None


class Context(Protocol):
    """What a rule may look up. The batch world and the incremental engine both provide it."""

    def project(self, project_id: str | None) -> Project | None: ...
    def employee(self, employee_id: str | None) -> Employee | None: ...
    def contract(self, contract_id: str | None) -> Contract | None: ...
    def account(self, account_id: str | None) -> Account | None: ...
    def amendment_pending(self, contract_id: str) -> bool: ...
    def odd_amendments(self, contract_id: str) -> Iterable[ContractAmendment]:
        """The contract's amendments whose status is not one of AMENDMENT_STATUSES."""
        ...

    def rates(self, contract_id: str) -> Iterable[ContractRate]: ...


# (null flag, moment, kind, numeric id, text id): null timestamps after every timestamp;
# kinds never tie across types (timesheet 0, milestone 1), so ids are compared within a kind.
OrderKey = tuple[int, datetime, int, int, str]
_NEVER = datetime.min.replace(tzinfo=UTC)


def order_key(moment: datetime | None, kind: SourceType, numeric: int, text: str) -> OrderKey:
    if moment is None:
        return (1, _NEVER, 0 if kind is SourceType.TIMESHEET else 1, numeric, text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (0, moment, 0 if kind is SourceType.TIMESHEET else 1, numeric, text)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A line that passed rules 1-14: it takes part in retainer and cap allocation."""

    target: LineTarget  # every dimension filled; allocation sets state and amounts
    contract_id: str
    order: OrderKey
    month: str  # calendar month of work_date / accepted_at: retainer month, `month` cap period
    hours: Decimal | None  # None for milestones: the retainer covers hours only
    rate: Decimal | None
    gross: Decimal
    tax_rate: Decimal


Outcome = LineTarget | Candidate | None
# what a rule decides: a (state, reason), or an unexpected value (exception, see the module)
Decision = tuple[State, str] | Unexpected


def _term(day: date | None, day_column: str, contract: Contract) -> Decision | None:
    """Rule 9; the ``end_date`` half first: a NULL ``start_date`` cannot change it."""
    if day is None:
        return Unexpected(9, day_column, None)
    if contract.end_date is not None and day > contract.end_date:
        return State.EXCEPTION, Reason.OUTSIDE_CONTRACT_TERM
    if contract.start_date is None:
        return Unexpected(9, "contracts.start_date", None)
    if day < contract.start_date:
        return State.EXCEPTION, Reason.OUTSIDE_CONTRACT_TERM
    return None


def _amendments(contract_id: str, ctx: Context) -> Decision | None:
    """Rule 8: a pending amendment holds; one with a status the SPEC does not list is unexpected."""
    if ctx.amendment_pending(contract_id):
        return State.HELD, Reason.AMENDMENT_PENDING
    odd = sorted(ctx.odd_amendments(contract_id), key=lambda a: a.amendment_id)
    return Unexpected(8, "contract_amendments.status", odd[0].status) if odd else None


def _contract_rules(
    project: Project,
    contract: Contract | None,
    account: Account | None,
    day: date | None,
    ctx: Context,
    *,
    milestone: bool,
) -> Decision | None:
    """Rules 5-12 (10 only for timesheets). Returns the deciding state, or None to go on."""
    if project.status == "on_hold":
        return State.HELD, Reason.PROJECT_ON_HOLD
    if project.status == "closed":
        return State.EXCEPTION, Reason.PROJECT_CLOSED
    if project.status not in PROJECT_STATUSES:
        return Unexpected(5, "projects.status", project.status)
    if contract is None:
        return State.HELD, Reason.CONTRACT_UNKNOWN
    if account is None:
        return State.HELD, Reason.ACCOUNT_UNKNOWN
    if contract.status == "suspended":
        return State.HELD, Reason.CONTRACT_SUSPENDED
    if contract.status in ("draft", "terminated"):
        return State.EXCEPTION, Reason.CONTRACT_INACTIVE
    if contract.status not in CONTRACT_STATUSES:
        return Unexpected(7, "contracts.status", contract.status)
    decided = _amendments(contract.contract_id, ctx) or _term(
        day, "milestones.accepted_at" if milestone else "timesheets.work_date", contract
    )
    if decided is not None:  # rules 8, 9
        return decided
    if not milestone and contract.contract_type == "milestone":
        return State.NON_BILLABLE, Reason.MILESTONE_CONTRACT
    if not milestone and contract.contract_type not in CONTRACT_TYPES:
        return Unexpected(10, "contracts.contract_type", contract.contract_type)
    if account.erp_customer_id is None:
        return State.HELD, Reason.CUSTOMER_NOT_IN_ERP
    if not _currency_ok(contract.currency):
        return Unexpected(12, "contracts.currency", contract.currency)
    if not _currency_ok(account.currency):
        return Unexpected(12, "accounts.currency", account.currency)
    if contract.currency != account.currency:
        return State.EXCEPTION, Reason.CURRENCY_MISMATCH
    return None


def _before_candidate(
    project: Project, contract: Contract, employee: Employee | None
) -> Unexpected | None:
    """Checked after rule 14: the ledger dimensions and the allocation parameters."""
    if project.legal_entity is None:
        return Unexpected(15, "projects.legal_entity", None)
    if employee is not None and employee.cost_center is None:
        return Unexpected(15, "employees.cost_center", None)
    return contract_unexpected(contract)


def _rate(contract_id: str, category: str | None, day: date, ctx: Context) -> Decision | Decimal:
    """Rule 14: the one rate of the category on ``day``, or what decides instead."""
    found: list[Decimal] = []
    odd: list[tuple[str, Unexpected]] = []
    for r in ctx.rates(contract_id):
        if r.labor_category != category:
            continue
        if r.effective_from is None:  # cannot tell whether it covers the day
            odd.append((r.rate_id, Unexpected(14, "contract_rates.effective_from", None)))
        elif r.effective_from <= day and (r.effective_to is None or day <= r.effective_to):
            if r.hourly_rate is None or r.hourly_rate < 0:
                odd.append((r.rate_id, Unexpected(14, "contract_rates.hourly_rate", r.hourly_rate)))
            else:
                found.append(r.hourly_rate)
    if len(found) > 1:
        return State.EXCEPTION, Reason.AMBIGUOUS_RATE
    if odd:
        return min(odd, key=lambda o: o[0])[1]
    if not found:
        return State.EXCEPTION, Reason.NO_RATE
    return found[0]


def _resolve(
    ctx: Context, project_id: str | None
) -> tuple[Project | None, Contract | None, Account | None]:
    project = ctx.project(project_id)
    contract = ctx.contract(project.contract_id) if project is not None else None
    account = ctx.account(contract.account_id) if contract is not None else None
    return project, contract, account


def _timesheet_refs(
    ts: Timesheet, ctx: Context, mappings: Mappings
) -> tuple[Project | None, Contract | None, Account | None, Employee | None, LaborMapping | None]:
    """The rows and the labor mapping the rules read for a timesheet (None: unknown)."""
    project, contract, account = _resolve(ctx, ts.project_id)
    employee = ctx.employee(ts.employee_id)
    category = employee.labor_category if employee is not None else None
    labor = mappings.labor.get(category) if category is not None else None
    return project, contract, account, employee, labor


def _timesheet_decision(
    ts: Timesheet,
    project: Project | None,
    contract: Contract | None,
    account: Account | None,
    employee: Employee | None,
    labor: LaborMapping | None,
    ctx: Context,
    mappings: Mappings,
) -> Decision | tuple[Decimal, Decimal]:
    """Rules 2-14 for an approved timesheet: the deciding state, or (rate, tax rate)."""
    hours = ts.hours
    if hours is None:  # rule 2
        return Unexpected(2, "timesheets.hours", None)
    if hours <= 0 or hours > 24:
        return State.EXCEPTION, Reason.INVALID_HOURS
    if ts.billable is False:  # rule 3
        return State.NON_BILLABLE, Reason.NOT_BILLABLE
    if ts.billable is not True:
        return Unexpected(3, "timesheets.billable", ts.billable)
    if project is None:  # rule 4
        return State.HELD, Reason.PROJECT_UNKNOWN
    if employee is None:
        return State.HELD, Reason.EMPLOYEE_UNKNOWN
    decided = _contract_rules(project, contract, account, ts.work_date, ctx, milestone=False)
    if decided is not None:  # rules 5-12
        return decided
    assert contract is not None and account is not None  # rules 6 guarantee both
    if labor is None:  # rule 13
        return State.EXCEPTION, Reason.UNMAPPED_LABOR_CATEGORY
    tax_rate = mappings.tax.get(account.tax_jurisdiction or "")
    if account.tax_jurisdiction is None or tax_rate is None:
        return State.EXCEPTION, Reason.UNMAPPED_TAX_JURISDICTION
    day = ts.work_date
    assert day is not None  # rule 9 refuses a NULL work_date
    rate = _rate(contract.contract_id, employee.labor_category, day, ctx)  # rule 14
    if not isinstance(rate, Decimal):
        return rate
    return _before_candidate(project, contract, employee) or (rate, tax_rate)


def classify_timesheet(ts: Timesheet | None, ctx: Context, mappings: Mappings) -> Outcome:
    """Rules 1-15 for one timesheet line (None: deleted or not approved: no line state).

    A rule's decision is a target with zero amounts. A candidate carries the target of the
    line billed in full (billed = billable = gross, its tax; nothing held or covered):
    allocation keeps it as is when neither retainer nor cap changes a figure.
    """
    if ts is None or ts.status != "approved":  # rule 1
        return None
    project, contract, account, employee, labor = _timesheet_refs(ts, ctx, mappings)
    decision = _timesheet_decision(ts, project, contract, account, employee, labor, ctx, mappings)
    rate: Decimal | None = None
    tax_rate = gross = tax = ZERO
    if isinstance(decision, Unexpected):
        state, reason = State.EXCEPTION, Reason.UNEXPECTED_SOURCE_VALUE
    elif isinstance(decision[0], State):
        state, reason = decision
        assert isinstance(reason, str)
    else:
        state, reason = State.BILLED, None
        rate, tax_rate = decision
        assert isinstance(rate, Decimal) and isinstance(tax_rate, Decimal)
        assert ts.hours is not None
        gross = q2(ts.hours * rate)  # rule 15
        tax = q2(gross * tax_rate)
    period = month_of(ts.work_date)
    # one constructor call, as in classify_milestone: a shared helper adds ~1.2 us an item
    target = LineTarget(
        source_type=SourceType.TIMESHEET,
        source_id=str(ts.timesheet_id),
        state=state,
        reason=reason,
        contract_id=project.contract_id if project is not None else None,
        project_id=ts.project_id,
        period=period,
        billable_amount=gross,
        billed_amount=gross,
        tax_amount=tax,
        currency=contract.currency if contract is not None else None,
        erp_customer_id=account.erp_customer_id if account is not None else None,
        legal_entity=project.legal_entity if project is not None else None,
        erp_item_code=labor.erp_item_code if labor is not None else None,
        revenue_account=labor.revenue_account if labor is not None else None,
        cost_center=employee.cost_center if employee is not None else None,
        work_date=ts.work_date,
        hours=ts.hours,
        rate=rate,
        billable=ts.billable,
    )
    if rate is None:
        return target
    assert contract is not None and period is not None
    return Candidate(
        target=target,
        contract_id=contract.contract_id,
        order=order_key(ts.approved_at, SourceType.TIMESHEET, ts.timesheet_id, ""),
        month=period,
        hours=ts.hours,
        rate=rate,
        gross=gross,
        tax_rate=tax_rate,
    )


def _milestone_decision(
    ms: Milestone,
    project: Project | None,
    contract: Contract | None,
    account: Account | None,
    labor: LaborMapping | None,
    ctx: Context,
    mappings: Mappings,
) -> Decision | Decimal | None:
    """The milestone paragraph for an accepted milestone of a contract that is not known to
    be of another type: the deciding state, or the tax rate of a candidate."""
    if ms.amount is None:
        return Unexpected(2, "milestones.amount", None)
    if ms.amount <= 0:
        return State.EXCEPTION, Reason.INVALID_AMOUNT
    if project is None:  # rule 4 (no employee part)
        return State.HELD, Reason.PROJECT_UNKNOWN
    day = utc_date(ms.accepted_at)
    decided = _contract_rules(project, contract, account, day, ctx, milestone=True)
    if decided is not None:  # rules 5-9, 11, 12
        return decided
    assert contract is not None and account is not None  # rule 6 guarantees both
    tax_rate = mappings.tax.get(account.tax_jurisdiction or "")  # rule 13: tax first
    if account.tax_jurisdiction is None or tax_rate is None:
        return State.EXCEPTION, Reason.UNMAPPED_TAX_JURISDICTION
    if labor is None:  # then the MILESTONE labor mapping
        return State.EXCEPTION, Reason.UNMAPPED_LABOR_CATEGORY
    return _before_candidate(project, contract, None) or tax_rate


def _milestone_type(contract: Contract | None) -> Unexpected | bool:
    """Whether a known contract's type takes its accepted milestones out of billing (no line
    state), or the unexpected type that makes them an exception."""
    if contract is None or contract.contract_type == "milestone":
        return False
    if contract.contract_type in CONTRACT_TYPES:
        return True
    return Unexpected(10, "contracts.contract_type", contract.contract_type)


def classify_milestone(ms: Milestone | None, ctx: Context, mappings: Mappings) -> Outcome:
    """The milestone paragraph of SPEC 2: accepted milestones of milestone contracts bill."""
    if ms is None or ms.status != "accepted":
        return None
    project, contract, account = _resolve(ctx, ms.project_id)
    other = _milestone_type(contract)
    if other is True:
        return None  # known contract of another type: not billed, no line state
    labor = mappings.labor.get(MILESTONE_CATEGORY)
    decision = other or _milestone_decision(ms, project, contract, account, labor, ctx, mappings)
    gross = tax = ZERO
    if isinstance(decision, Unexpected):
        state, reason = State.EXCEPTION, Reason.UNEXPECTED_SOURCE_VALUE
    elif isinstance(decision, tuple):
        state, reason = decision
    else:
        assert ms.amount is not None and isinstance(decision, Decimal)
        state, reason = State.BILLED, None
        gross = q2(ms.amount)
        tax = q2(gross * decision)
    period = milestone_period(ms.accepted_at)
    # one constructor call, as in classify_timesheet: a shared helper adds ~1.2 us an item
    target = LineTarget(
        source_type=SourceType.MILESTONE,
        source_id=ms.milestone_id,
        state=state,
        reason=reason,
        contract_id=project.contract_id if project is not None else None,
        project_id=ms.project_id,
        period=period,
        billable_amount=gross,
        billed_amount=gross,
        tax_amount=tax,
        currency=contract.currency if contract is not None else None,
        erp_customer_id=account.erp_customer_id if account is not None else None,
        legal_entity=project.legal_entity if project is not None else None,
        erp_item_code=labor.erp_item_code if labor is not None else None,
        revenue_account=labor.revenue_account if labor is not None else None,
        work_date=utc_date(ms.accepted_at),
    )
    if not isinstance(decision, Decimal):
        return target
    assert contract is not None and period is not None
    return Candidate(
        target=target,
        contract_id=contract.contract_id,
        order=order_key(ms.accepted_at, SourceType.MILESTONE, 0, ms.milestone_id),
        month=period,
        hours=None,
        rate=None,
        gross=gross,
        tax_rate=decision,
    )


def unexpected(item: Timesheet | Milestone, ctx: Context, mappings: Mappings) -> Unexpected | None:
    """The unexpected source value that decides ``item`` (its ``UNEXPECTED_SOURCE_VALUE``
    exception), or None. The same evaluation as :func:`classify_timesheet` /
    :func:`classify_milestone`: what ``billsync explain`` shows finance."""
    if isinstance(item, Timesheet):
        if item.status != "approved":
            return None
        project, contract, account, employee, labor = _timesheet_refs(item, ctx, mappings)
        decision: object = _timesheet_decision(
            item, project, contract, account, employee, labor, ctx, mappings
        )
    else:
        if item.status != "accepted":
            return None
        project, contract, account = _resolve(ctx, item.project_id)
        labor = mappings.labor.get(MILESTONE_CATEGORY)
        decision = _milestone_type(contract) or _milestone_decision(
            item, project, contract, account, labor, ctx, mappings
        )
    return decision if isinstance(decision, Unexpected) else None


def schedule_line(ms: Milestone | None, ctx: Context) -> ScheduleLine | None:
    """The invoice-schedule row of a milestone: every milestone that is not cancelled.

    Literal SPEC, whatever the values: the schedule posts nothing, and it carries the
    milestone's ``status``, ``amount`` and the contract's ``currency`` as they are (NULL or a
    status the SPEC does not list included), so finance sees them in ``invoice_schedule``.
    """
    if ms is None or ms.status == "cancelled":
        return None
    project = ctx.project(ms.project_id)
    contract_id = project.contract_id if project is not None else None
    contract = ctx.contract(contract_id)
    return ScheduleLine(
        milestone_id=ms.milestone_id,
        contract_id=contract_id,
        project_id=ms.project_id,
        due_date=ms.due_date,
        amount=ms.amount,
        currency=contract.currency if contract is not None else None,
        status=ms.status,
    )
