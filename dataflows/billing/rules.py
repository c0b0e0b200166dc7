"""Classification of one billing item against its context: SPEC section 2, rules 1-15.

:func:`classify_timesheet` and :func:`classify_milestone` return ``None`` (no line state), a
final :class:`~dataflows.billing.target.LineTarget` (held / exception / non_billable decided
by a rule) or a :class:`Candidate` that allocation (retainer, cap, tax) turns into a target.
The first rule that fires decides, in the exact order of the SPEC table.

Where the SPEC is silent (values the source schemas do not expect), the choice is the one
that never bills on missing data:

- ``hours`` NULL is ``INVALID_HOURS``; ``billable`` NULL counts as false (``NOT_BILLABLE``);
- ``work_date`` NULL (or a milestone accepted without ``accepted_at``) fails the term check
  (``OUTSIDE_CONTRACT_TERM``); a contract's ``start_date`` NULL means "no lower bound";
- a rate row with ``hourly_rate`` NULL is not a rate; ``effective_from`` NULL means open;
- a milestone ``amount`` NULL is ``INVALID_AMOUNT``;
- statuses are compared literally: only the values the table names fire a rule.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Protocol

from dataflows.billing.mappings import MILESTONE_CATEGORY, LaborMapping, Mappings
from dataflows.billing.money import ZERO, milestone_period, month_of, q2, utc_date
from dataflows.billing.target import LineTarget, ScheduleLine, SourceType, State
from dataflows.model import (
    Account,
    Contract,
    ContractRate,
    Employee,
    Milestone,
    Project,
    Timesheet,
)


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


class Context(Protocol):
    """What a rule may look up. The batch world and the incremental engine both provide it."""

    def project(self, project_id: str | None) -> Project | None: ...
    def employee(self, employee_id: str | None) -> Employee | None: ...
    def contract(self, contract_id: str | None) -> Contract | None: ...
    def account(self, account_id: str | None) -> Account | None: ...
    def amendment_pending(self, contract_id: str) -> bool: ...
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
Decision = tuple[State, str]  # the (state, reason) a rule decides


def _in_term(day: date | None, contract: Contract) -> bool:
    if day is None:
        return False
    if contract.start_date is not None and day < contract.start_date:
        return False
    return not (contract.end_date is not None and day > contract.end_date)


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
    if contract is None:
        return State.HELD, Reason.CONTRACT_UNKNOWN
    if account is None:
        return State.HELD, Reason.ACCOUNT_UNKNOWN
    if contract.status == "suspended":
        return State.HELD, Reason.CONTRACT_SUSPENDED
    if contract.status in ("draft", "terminated"):
        return State.EXCEPTION, Reason.CONTRACT_INACTIVE
    if ctx.amendment_pending(contract.contract_id):
        return State.HELD, Reason.AMENDMENT_PENDING
    if not _in_term(day, contract):
        return State.EXCEPTION, Reason.OUTSIDE_CONTRACT_TERM
    if not milestone and contract.contract_type == "milestone":
        return State.NON_BILLABLE, Reason.MILESTONE_CONTRACT
    if account.erp_customer_id is None:
        return State.HELD, Reason.CUSTOMER_NOT_IN_ERP
    if contract.currency != account.currency:
        return State.EXCEPTION, Reason.CURRENCY_MISMATCH
    return None


def _resolve(
    ctx: Context, project_id: str | None
) -> tuple[Project | None, Contract | None, Account | None]:
    project = ctx.project(project_id)
    contract = ctx.contract(project.contract_id) if project is not None else None
    account = ctx.account(contract.account_id) if contract is not None else None
    return project, contract, account


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
    if hours is None or hours <= 0 or hours > 24:  # rule 2
        return State.EXCEPTION, Reason.INVALID_HOURS
    if ts.billable is not True:  # rule 3
        return State.NON_BILLABLE, Reason.NOT_BILLABLE
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
    category = employee.labor_category
    found = [
        r.hourly_rate
        for r in ctx.rates(contract.contract_id)
        if r.labor_category == category
        and r.hourly_rate is not None
        and (r.effective_from is None or r.effective_from <= day)
        and (r.effective_to is None or day <= r.effective_to)
    ]
    if not found:  # rule 14
        return State.EXCEPTION, Reason.NO_RATE
    if len(found) > 1:
        return State.EXCEPTION, Reason.AMBIGUOUS_RATE
    return found[0], tax_rate


def classify_timesheet(ts: Timesheet | None, ctx: Context, mappings: Mappings) -> Outcome:
    """Rules 1-15 for one timesheet line (None: deleted or not approved: no line state).

    A rule's decision is a target with zero amounts. A candidate carries the target of the
    line billed in full (billed = billable = gross, its tax; nothing held or covered):
    allocation keeps it as is when neither retainer nor cap changes a figure.
    """
    if ts is None or ts.status != "approved":  # rule 1
        return None
    project, contract, account = _resolve(ctx, ts.project_id)
    employee = ctx.employee(ts.employee_id)
    category = employee.labor_category if employee is not None else None
    labor = mappings.labor.get(category) if category is not None else None
    decision = _timesheet_decision(ts, project, contract, account, employee, labor, ctx, mappings)
    rate: Decimal | None = None
    gross = tax = ZERO
    if isinstance(decision[0], State):
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
    assert contract is not None and period is not None and isinstance(decision[1], Decimal)
    return Candidate(
        target=target,
        contract_id=contract.contract_id,
        order=order_key(ts.approved_at, SourceType.TIMESHEET, ts.timesheet_id, ""),
        month=period,
        hours=ts.hours,
        rate=rate,
        gross=gross,
        tax_rate=decision[1],
    )


def classify_milestone(ms: Milestone | None, ctx: Context, mappings: Mappings) -> Outcome:
    """The milestone paragraph of SPEC 2: accepted milestones of milestone contracts bill."""
    if ms is None or ms.status != "accepted":
        return None
    project, contract, account = _resolve(ctx, ms.project_id)
    if contract is not None and contract.contract_type != "milestone":
        return None  # known contract of another type: not billed, no line state
    labor = mappings.labor.get(MILESTONE_CATEGORY)
    day = utc_date(ms.accepted_at)
    decision: Decision | None = None
    tax_rate: Decimal | None = None
    if ms.amount is None or ms.amount <= 0:
        decision = State.EXCEPTION, Reason.INVALID_AMOUNT
    elif project is None:  # rule 4 (no employee part)
        decision = State.HELD, Reason.PROJECT_UNKNOWN
    else:
        decision = _contract_rules(project, contract, account, day, ctx, milestone=True)
        if decision is None:  # rules 5-9, 11, 12 passed
            assert account is not None
            tax_rate = mappings.tax.get(account.tax_jurisdiction or "")  # rule 13: tax first
            if account.tax_jurisdiction is None or tax_rate is None:
                decision = State.EXCEPTION, Reason.UNMAPPED_TAX_JURISDICTION
            elif labor is None:  # then the MILESTONE labor mapping
                decision = State.EXCEPTION, Reason.UNMAPPED_LABOR_CATEGORY
    gross = tax = ZERO
    if decision is None:
        assert ms.amount is not None and tax_rate is not None
        gross = q2(ms.amount)
        tax = q2(gross * tax_rate)
    state, reason = decision if decision is not None else (State.BILLED, None)
    period = milestone_period(ms.accepted_at)
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
        work_date=day,
    )
    if decision is not None:
        return target
    assert contract is not None and period is not None and tax_rate is not None
    return Candidate(
        target=target,
        contract_id=contract.contract_id,
        order=order_key(ms.accepted_at, SourceType.MILESTONE, 0, ms.milestone_id),
        month=period,
        hours=None,
        rate=None,
        gross=gross,
        tax_rate=tax_rate,
    )


def schedule_line(ms: Milestone | None, ctx: Context) -> ScheduleLine | None:
    """The invoice-schedule row of a milestone: every milestone that is not cancelled."""
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
