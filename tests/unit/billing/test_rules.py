"""Every rule and reason of SPEC 2, one tiny world per row, in the order of the table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

from billsync.model import ContractAmendment, ContractRate, Milestone, Row, Timesheet
from dataflows.billing.batch import World, context
from dataflows.billing.mappings import Mappings
from dataflows.billing.rules import unexpected
from dataflows.billing.target import State

from .worlds import (
    MAPPINGS,
    NO_MILESTONE_MAPPING,
    D,
    base_rows,
    edit,
    line,
    milestone_rows,
    targets,
)

T1 = ("timesheet", "1")
M1 = ("milestone", "M1")
Rows = dict[str, Row]


def add(rows: Rows, name: str, row: Row) -> Rows:
    out = dict(rows)
    out[name] = row
    return out


def pending(rows: Rows, contract: str = "C1") -> Rows:
    return add(rows, "AM1", ContractAmendment("AM1", contract, "pending", date(2024, 5, 1)))


def amendment(rows: Rows, status: str | None, contract: str = "C1") -> Rows:
    return add(rows, "AM2", ContractAmendment("AM2", contract, status, date(2024, 5, 1)))


def rate(rows: Rows, **columns: object) -> Rows:
    """A second CONSULTANT rate row R2 of C1 (by default covering the whole of 2024)."""
    values: dict[str, object] = {"hourly_rate": D("160.00"), "effective_from": date(2024, 1, 1),
                                 "effective_to": date(2024, 12, 31)} | columns  # fmt: skip
    return add(rows, "R2", ContractRate("R2", "C1", "CONSULTANT", **values))  # type: ignore[arg-type]


U = "UNEXPECTED_SOURCE_VALUE"
CAPPED = {"cap_amount": D("100000.00")}
UNMAPPED_TAX = Mappings.of({"CONSULTANT": ("SVC-CON", "4010")}, {"DE": D("0.19")})

# (case id, world change, expected state, expected reason); None state = no line state
TIMESHEET_CASES: list[tuple[str, Callable[[Rows], Rows], State | None, str | None]] = [
    ("happy", lambda r: r, State.BILLED, None),
    ("1 draft", lambda r: edit(r, "T1", status="draft"), None, None),
    ("1 submitted", lambda r: edit(r, "T1", status="submitted"), None, None),
    ("1 rejected", lambda r: edit(r, "T1", status="rejected"), None, None),
    ("1 deleted", lambda r: edit(r, "T1", _delete=True), None, None),
    ("2 zero hours", lambda r: edit(r, "T1", hours=D("0")), State.EXCEPTION, "INVALID_HOURS"),
    ("2 negative", lambda r: edit(r, "T1", hours=D("-1")), State.EXCEPTION, "INVALID_HOURS"),
    ("2 over 24", lambda r: edit(r, "T1", hours=D("24.01")), State.EXCEPTION, "INVALID_HOURS"),
    ("2 null hours", lambda r: edit(r, "T1", hours=None), State.EXCEPTION, U),
    ("2 beats 3", lambda r: edit(r, "T1", hours=D("0"), billable=False), State.EXCEPTION,
     "INVALID_HOURS"),
    ("3 not billable", lambda r: edit(r, "T1", billable=False), State.NON_BILLABLE,
     "NOT_BILLABLE"),
    ("3 null billable", lambda r: edit(r, "T1", billable=None), State.EXCEPTION, U),
    ("2 beats 3 unexpected", lambda r: edit(r, "T1", hours=D("0"), billable=None),
     State.EXCEPTION, "INVALID_HOURS"),
    ("3 unexpected beats 4", lambda r: edit(edit(r, "T1", billable=None), "P1", _delete=True),
     State.EXCEPTION, U),
    ("3 beats 4", lambda r: edit(edit(r, "T1", billable=False), "P1", _delete=True),
     State.NON_BILLABLE, "NOT_BILLABLE"),
    ("4 project unknown", lambda r: edit(r, "P1", _delete=True), State.HELD, "PROJECT_UNKNOWN"),
    ("4 project id null", lambda r: edit(r, "T1", project_id=None), State.HELD,
     "PROJECT_UNKNOWN"),
    ("4 project before employee", lambda r: edit(edit(r, "P1", _delete=True), "E1",
     _delete=True), State.HELD, "PROJECT_UNKNOWN"),
    ("4 employee unknown", lambda r: edit(r, "E1", _delete=True), State.HELD,
     "EMPLOYEE_UNKNOWN"),
    ("5 on hold", lambda r: edit(r, "P1", status="on_hold"), State.HELD, "PROJECT_ON_HOLD"),
    ("5 closed", lambda r: edit(r, "P1", status="closed"), State.EXCEPTION, "PROJECT_CLOSED"),
    ("5 beats 6", lambda r: edit(edit(r, "P1", status="closed"), "C1", _delete=True),
     State.EXCEPTION, "PROJECT_CLOSED"),
    ("6 contract unknown", lambda r: edit(r, "C1", _delete=True), State.HELD,
     "CONTRACT_UNKNOWN"),
    ("6 contract id null", lambda r: edit(r, "P1", contract_id=None), State.HELD,
     "CONTRACT_UNKNOWN"),
    ("6 account unknown", lambda r: edit(r, "A1", _delete=True), State.HELD, "ACCOUNT_UNKNOWN"),
    ("7 suspended", lambda r: edit(r, "C1", status="suspended"), State.HELD,
     "CONTRACT_SUSPENDED"),
    ("7 draft", lambda r: edit(r, "C1", status="draft"), State.EXCEPTION, "CONTRACT_INACTIVE"),
    ("7 terminated", lambda r: edit(r, "C1", status="terminated"), State.EXCEPTION,
     "CONTRACT_INACTIVE"),
    ("7 beats 8", lambda r: pending(edit(r, "C1", status="suspended")), State.HELD,
     "CONTRACT_SUSPENDED"),
    ("8 amendment pending", pending, State.HELD, "AMENDMENT_PENDING"),
    ("8 approved amendment", lambda r: add(r, "AM1", ContractAmendment("AM1", "C1", "approved")),
     State.BILLED, None),
    ("8 other contract", lambda r: pending(r, "C9"), State.BILLED, None),
    ("8 beats 9", lambda r: pending(edit(r, "T1", work_date=date(2025, 1, 1))), State.HELD,
     "AMENDMENT_PENDING"),
    ("9 before start", lambda r: edit(r, "T1", work_date=date(2023, 12, 31)), State.EXCEPTION,
     "OUTSIDE_CONTRACT_TERM"),
    ("9 after end", lambda r: edit(r, "T1", work_date=date(2025, 1, 1)), State.EXCEPTION,
     "OUTSIDE_CONTRACT_TERM"),
    ("9 on start", lambda r: edit(r, "T1", work_date=date(2024, 1, 1)), State.BILLED, None),
    ("9 on end", lambda r: edit(r, "T1", work_date=date(2024, 12, 31)), State.BILLED, None),
    ("9 open end", lambda r: edit(edit(r, "C1", end_date=None), "T1", work_date=date(2030, 1, 1)),
     State.BILLED, None),
    ("9 null work_date", lambda r: edit(r, "T1", work_date=None), State.EXCEPTION, U),
    ("9 beats 10", lambda r: edit(edit(r, "C1", contract_type="milestone"), "T1",
     work_date=date(2025, 1, 1)), State.EXCEPTION, "OUTSIDE_CONTRACT_TERM"),
    ("10 milestone contract", lambda r: edit(r, "C1", contract_type="milestone"),
     State.NON_BILLABLE, "MILESTONE_CONTRACT"),
    ("10 beats 11", lambda r: edit(edit(r, "C1", contract_type="milestone"), "A1",
     erp_customer_id=None), State.NON_BILLABLE, "MILESTONE_CONTRACT"),
    ("11 not in ERP", lambda r: edit(r, "A1", erp_customer_id=None), State.HELD,
     "CUSTOMER_NOT_IN_ERP"),
    ("11 beats 12", lambda r: edit(r, "A1", erp_customer_id=None, currency="EUR"), State.HELD,
     "CUSTOMER_NOT_IN_ERP"),
    ("12 currency", lambda r: edit(r, "A1", currency="EUR"), State.EXCEPTION,
     "CURRENCY_MISMATCH"),
    ("12 beats 13", lambda r: edit(edit(r, "A1", currency="EUR"), "E1", labor_category=None),
     State.EXCEPTION, "CURRENCY_MISMATCH"),
    ("13 null category", lambda r: edit(r, "E1", labor_category=None), State.EXCEPTION,
     "UNMAPPED_LABOR_CATEGORY"),
    ("13 unmapped category", lambda r: edit(r, "E1", labor_category="JUGGLER"), State.EXCEPTION,
     "UNMAPPED_LABOR_CATEGORY"),
    ("13 labor before tax", lambda r: edit(edit(r, "E1", labor_category="JUGGLER"), "A1",
     tax_jurisdiction="XX"), State.EXCEPTION, "UNMAPPED_LABOR_CATEGORY"),
    ("13 unmapped tax", lambda r: edit(r, "A1", tax_jurisdiction="XX"), State.EXCEPTION,
     "UNMAPPED_TAX_JURISDICTION"),
    ("13 null tax", lambda r: edit(r, "A1", tax_jurisdiction=None), State.EXCEPTION,
     "UNMAPPED_TAX_JURISDICTION"),
    ("13 beats 14", lambda r: edit(edit(r, "A1", tax_jurisdiction="XX"), "R1", _delete=True),
     State.EXCEPTION, "UNMAPPED_TAX_JURISDICTION"),
    ("14 no rate", lambda r: edit(r, "R1", _delete=True), State.EXCEPTION, "NO_RATE"),
    ("14 other category", lambda r: edit(r, "R1", labor_category="MANAGER"), State.EXCEPTION,
     "NO_RATE"),
    ("14 other contract", lambda r: edit(r, "R1", contract_id="C9"), State.EXCEPTION, "NO_RATE"),
    ("14 not yet effective", lambda r: edit(r, "R1", effective_from=date(2024, 3, 16)),
     State.EXCEPTION, "NO_RATE"),
    ("14 expired", lambda r: edit(r, "R1", effective_to=date(2024, 3, 14)), State.EXCEPTION,
     "NO_RATE"),
    ("14 effective from the day", lambda r: edit(r, "R1", effective_from=date(2024, 3, 15)),
     State.BILLED, None),
    ("14 effective to the day", lambda r: edit(r, "R1", effective_to=date(2024, 3, 15)),
     State.BILLED, None),
    ("14 null hourly_rate", lambda r: edit(r, "R1", hourly_rate=None), State.EXCEPTION, U),
    ("14 ambiguous", lambda r: add(r, "R2", ContractRate("R2", "C1", "CONSULTANT", D("160"),
     date(2024, 3, 1), date(2024, 3, 31))), State.EXCEPTION, "AMBIGUOUS_RATE"),
    ("14 adjacent rates", lambda r: add(edit(r, "R1", effective_to=date(2024, 2, 29)), "R2",
     ContractRate("R2", "C1", "CONSULTANT", D("160"), date(2024, 3, 1), None)), State.BILLED,
     None),
    # values the SPEC does not list: an exception at the place of the rule that reads them
    ("1 null status: no line state", lambda r: edit(r, "T1", status=None), None, None),
    ("1 unlisted status: no line state", lambda r: edit(r, "T1", status="invoiced"), None, None),
    ("5 null project status", lambda r: edit(r, "P1", status=None), State.EXCEPTION, U),
    ("5 unlisted project status", lambda r: edit(r, "P1", status="archived"), State.EXCEPTION,
     U),
    ("5 status is case-sensitive", lambda r: edit(r, "P1", status="Active"), State.EXCEPTION, U),
    ("4 beats 5 unexpected", lambda r: edit(edit(r, "P1", status=None), "E1", _delete=True),
     State.HELD, "EMPLOYEE_UNKNOWN"),
    ("5 unexpected beats 6", lambda r: edit(edit(r, "P1", status=None), "C1", _delete=True),
     State.EXCEPTION, U),
    ("7 null contract status", lambda r: edit(r, "C1", status=None), State.EXCEPTION, U),
    ("7 unlisted contract status", lambda r: edit(r, "C1", status="expired"), State.EXCEPTION,
     U),
    ("6 beats 7 unexpected", lambda r: edit(edit(r, "C1", status="expired"), "A1",
     _delete=True), State.HELD, "ACCOUNT_UNKNOWN"),
    ("7 unexpected beats 8", lambda r: pending(edit(r, "C1", status="expired")),
     State.EXCEPTION, U),
    ("8 null amendment status", lambda r: amendment(r, None), State.EXCEPTION, U),
    ("8 unlisted amendment status", lambda r: amendment(r, "withdrawn"), State.EXCEPTION, U),
    ("8 pending beats unexpected", lambda r: pending(amendment(r, "withdrawn")), State.HELD,
     "AMENDMENT_PENDING"),
    ("8 other contract's amendment", lambda r: amendment(r, "withdrawn", "C9"), State.BILLED,
     None),
    ("8 unexpected beats 9", lambda r: edit(amendment(r, None), "T1",
     work_date=date(2025, 1, 1)), State.EXCEPTION, U),
    ("9 null start_date", lambda r: edit(r, "C1", start_date=None), State.EXCEPTION, U),
    ("9 after end beats null start", lambda r: edit(edit(r, "C1", start_date=None), "T1",
     work_date=date(2025, 1, 1)), State.EXCEPTION, "OUTSIDE_CONTRACT_TERM"),
    ("10 null contract type", lambda r: edit(r, "C1", contract_type=None), State.EXCEPTION, U),
    ("10 unlisted contract type", lambda r: edit(r, "C1", contract_type="fixed_fee"),
     State.EXCEPTION, U),
    ("9 beats 10 unexpected", lambda r: edit(edit(r, "C1", contract_type=None), "T1",
     work_date=date(2025, 1, 1)), State.EXCEPTION, "OUTSIDE_CONTRACT_TERM"),
    ("10 unexpected beats 11", lambda r: edit(edit(r, "C1", contract_type=None), "A1",
     erp_customer_id=None), State.EXCEPTION, U),
    ("12 both currencies null", lambda r: edit(edit(r, "C1", currency=None), "A1",
     currency=None), State.EXCEPTION, U),
    ("12 contract currency null", lambda r: edit(r, "C1", currency=None), State.EXCEPTION, U),
    ("12 account currency null", lambda r: edit(r, "A1", currency=None), State.EXCEPTION, U),
    ("12 not an ISO code", lambda r: edit(edit(r, "C1", currency="gbp"), "A1",
     currency="gbp"), State.EXCEPTION, U),
    ("12 empty currencies", lambda r: edit(edit(r, "C1", currency=""), "A1", currency=""),
     State.EXCEPTION, U),
    ("11 beats 12 unexpected", lambda r: edit(r, "A1", erp_customer_id=None, currency=None),
     State.HELD, "CUSTOMER_NOT_IN_ERP"),
    ("12 unexpected beats 13", lambda r: edit(edit(r, "A1", currency=None), "E1",
     labor_category=None), State.EXCEPTION, U),
    ("14 null effective_from", lambda r: edit(r, "R1", effective_from=None), State.EXCEPTION, U),
    ("14 negative rate", lambda r: edit(r, "R1", hourly_rate=D("-150.00")), State.EXCEPTION,
     U),
    ("14 second rate null", lambda r: rate(r, hourly_rate=None), State.EXCEPTION, U),
    ("14 second rate open start", lambda r: rate(r, effective_from=None), State.EXCEPTION, U),
    ("14 ambiguous beats unexpected", lambda r: add(rate(r), "R3", ContractRate("R3", "C1",
     "CONSULTANT", None, date(2024, 1, 1), None)), State.EXCEPTION, "AMBIGUOUS_RATE"),
    ("14 null rate on other days", lambda r: rate(r, hourly_rate=None,
     effective_to=date(2024, 2, 29)), State.BILLED, None),
    ("14 null rate of another category", lambda r: add(r, "R2", ContractRate("R2", "C1",
     "MANAGER", None, None)), State.BILLED, None),
    ("13 beats 14 unexpected", lambda r: edit(edit(r, "R1", hourly_rate=None), "A1",
     tax_jurisdiction="XX"), State.EXCEPTION, "UNMAPPED_TAX_JURISDICTION"),
    ("15 null legal_entity", lambda r: edit(r, "P1", legal_entity=None), State.EXCEPTION, U),
    ("15 null cost_center", lambda r: edit(r, "E1", cost_center=None), State.EXCEPTION, U),
    ("15 cap without cap_period", lambda r: edit(r, "C1", **CAPPED), State.EXCEPTION, U),
    ("15 unlisted cap_period", lambda r: edit(r, "C1", cap_period="week", **CAPPED),
     State.EXCEPTION, U),
    ("15 cap_period month", lambda r: edit(r, "C1", cap_period="month", **CAPPED),
     State.BILLED, None),
    ("15 cap_period contract", lambda r: edit(r, "C1", cap_period="contract", **CAPPED),
     State.BILLED, None),
    ("15 no cap: cap_period unread", lambda r: edit(r, "C1", cap_period="week"), State.BILLED,
     None),
    ("15 negative retainer", lambda r: edit(r, "C1", contract_type="retainer",
     retainer_hours_monthly=D("-8")), State.EXCEPTION, U),
    ("15 null retainer is 0", lambda r: edit(r, "C1", contract_type="retainer"), State.BILLED,
     None),
    ("14 beats 15", lambda r: edit(edit(r, "C1", **CAPPED), "R1", _delete=True),
     State.EXCEPTION, "NO_RATE"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "state", "reason"),
    [pytest.param(c, s, r, id=i) for i, c, s, r in TIMESHEET_CASES],
)
def test_timesheet_rule(
    change: Callable[[Rows], Rows], state: State | None, reason: str | None
) -> None:
    target = line(change(base_rows()), T1)
    if state is None:
        assert target is None
        return
    assert target is not None
    assert (target.state, target.reason) == (state, reason)
    if state is not State.BILLED:
        assert target.billed_amount == target.held_amount == target.tax_amount == 0
        assert target.billable_amount == 0


def test_happy_line_has_every_dimension() -> None:
    target = line(base_rows(), T1)
    assert target is not None
    assert target.billable_amount == target.billed_amount == D("1125.00")
    assert target.tax_amount == D("225.00")
    assert (target.held_amount, target.covered_hours) == (0, 0)
    assert (target.contract_id, target.project_id, target.period) == ("C1", "P1", "2024-03")
    assert (target.erp_customer_id, target.legal_entity, target.cost_center) == (
        "CUST-1",
        "UK-LTD",
        "CC-10",
    )
    assert (target.erp_item_code, target.revenue_account) == ("SVC-CON", "4010")
    assert (target.work_date, target.hours, target.rate) == (date(2024, 3, 15), D("7.50"), 150)
    assert (target.currency, target.billable) == ("GBP", True)


def test_held_line_keeps_known_dimensions_and_its_projects_contract() -> None:
    target = line(edit(base_rows(), "C1", _delete=True), T1)
    assert target is not None
    assert (target.contract_id, target.currency, target.erp_customer_id) == ("C1", None, None)
    unknown = line(edit(base_rows(), "P1", _delete=True), T1)
    assert unknown is not None and unknown.contract_id is None and unknown.project_id == "P1"


def test_gross_rounds_half_up() -> None:
    rows = edit(edit(base_rows(), "T1", hours=D("0.25")), "R1", hourly_rate=D("100.10"))
    target = line(rows, T1)  # 0.25 x 100.10 = 25.025 -> 25.03
    assert target is not None and target.billed_amount == D("25.03")
    assert target.tax_amount == D("5.01")  # 25.03 x 0.20 = 5.006 -> 5.01


def test_tax_rounds_half_up_at_the_half_cent() -> None:
    rows = edit(edit(base_rows(), "T1", hours=D("1")), "R1", hourly_rate=D("0.25"))
    target = line(rows, T1)  # 0.25 x 0.20 = 0.05; use US-NY for a real half
    assert target is not None and target.tax_amount == D("0.05")
    rows = edit(edit(edit(base_rows(), "T1", hours=D("1")), "R1", hourly_rate=D("40.00")), "A1",
                tax_jurisdiction="US-NY")  # fmt: skip
    target = line(rows, T1)  # 40 x 0.08875 = 3.55
    assert target is not None and target.tax_amount == D("3.55")
    rows = edit(edit(edit(base_rows(), "T1", hours=D("1")), "R1", hourly_rate=D("20.00")), "A1",
                tax_jurisdiction="US-NY")  # fmt: skip
    target = line(rows, T1)  # 20 x 0.08875 = 1.775 -> 1.78 (half-up, not banker's 1.78/1.77)
    assert target is not None and target.tax_amount == D("1.78")


# the milestone rows mirror the timesheet rows where SPEC 2 applies the same rule to both:
# a table of cases, alike in shape on purpose (each row is one rule, read on its own)
MILESTONE_CASES: list[tuple[str, Callable[[Rows], Rows], State | None, str | None]] = [
    ("accepted", lambda r: r, State.BILLED, None),
    ("planned", lambda r: edit(r, "M1", status="planned"), None, None),
    ("completed", lambda r: edit(r, "M1", status="completed"), None, None),
    ("cancelled", lambda r: edit(r, "M1", status="cancelled"), None, None),
    ("deleted", lambda r: edit(r, "M1", _delete=True), None, None),
    ("t&m contract: not billed", lambda r: edit(r, "C2", contract_type="time_and_materials"),
     None, None),
    ("retainer contract: not billed", lambda r: edit(r, "C2", contract_type="retainer"), None,
     None),
    ("not billed beats invalid amount", lambda r: edit(edit(r, "C2", contract_type="retainer"),
     "M1", amount=D("0")), None, None),
    ("zero amount", lambda r: edit(r, "M1", amount=D("0")), State.EXCEPTION, "INVALID_AMOUNT"),
    ("negative amount", lambda r: edit(r, "M1", amount=D("-5")), State.EXCEPTION,
     "INVALID_AMOUNT"),
    ("null amount", lambda r: edit(r, "M1", amount=None), State.EXCEPTION, U),
    ("invalid amount beats 4", lambda r: edit(edit(r, "M1", amount=D("0")), "P2", _delete=True),
     State.EXCEPTION, "INVALID_AMOUNT"),
    ("4 project unknown", lambda r: edit(r, "P2", _delete=True), State.HELD, "PROJECT_UNKNOWN"),
    ("5 on hold", lambda r: edit(r, "P2", status="on_hold"), State.HELD, "PROJECT_ON_HOLD"),
    ("5 closed", lambda r: edit(r, "P2", status="closed"), State.EXCEPTION, "PROJECT_CLOSED"),
    ("6 contract unknown", lambda r: edit(r, "C2", _delete=True), State.HELD,
     "CONTRACT_UNKNOWN"),
    ("6 account unknown", lambda r: edit(r, "A1", _delete=True), State.HELD, "ACCOUNT_UNKNOWN"),
    ("7 suspended", lambda r: edit(r, "C2", status="suspended"), State.HELD,
     "CONTRACT_SUSPENDED"),
    ("7 terminated", lambda r: edit(r, "C2", status="terminated"), State.EXCEPTION,
     "CONTRACT_INACTIVE"),
    ("8 pending", lambda r: pending(r, "C2"), State.HELD, "AMENDMENT_PENDING"),
    ("9 UTC date before start", lambda r: edit(r, "M1", accepted_at=datetime(
     2023, 12, 31, 23, 30, tzinfo=UTC)), State.EXCEPTION, "OUTSIDE_CONTRACT_TERM"),
    ("9 UTC date not local date", lambda r: edit(r, "M1", accepted_at=datetime.fromisoformat(
     "2023-12-31T20:00:00-05:00")), State.BILLED, None),
    ("9 null accepted_at", lambda r: edit(r, "M1", accepted_at=None), State.EXCEPTION, U),
    ("11 not in ERP", lambda r: edit(r, "A1", erp_customer_id=None), State.HELD,
     "CUSTOMER_NOT_IN_ERP"),
    ("12 currency", lambda r: edit(r, "C2", currency="EUR"), State.EXCEPTION,
     "CURRENCY_MISMATCH"),
    ("13 tax", lambda r: edit(r, "A1", tax_jurisdiction="XX"), State.EXCEPTION,
     "UNMAPPED_TAX_JURISDICTION"),
    # values the SPEC does not list
    ("null status: no line state", lambda r: edit(r, "M1", status=None), None, None),
    ("unlisted status: no line state", lambda r: edit(r, "M1", status="invoiced"), None, None),
    ("null contract type", lambda r: edit(r, "C2", contract_type=None), State.EXCEPTION, U),
    ("unlisted contract type", lambda r: edit(r, "C2", contract_type="fixed_fee"),
     State.EXCEPTION, U),
    ("unexpected type beats invalid amount", lambda r: edit(edit(r, "C2", contract_type=None),
     "M1", amount=D("0")), State.EXCEPTION, U),
    ("5 null project status", lambda r: edit(r, "P2", status=None), State.EXCEPTION, U),
    ("7 unlisted contract status", lambda r: edit(r, "C2", status="expired"), State.EXCEPTION,
     U),
    ("8 unlisted amendment status", lambda r: amendment(r, "withdrawn", "C2"), State.EXCEPTION,
     U),
    ("9 null start_date", lambda r: edit(r, "C2", start_date=None), State.EXCEPTION, U),
    ("12 both currencies null", lambda r: edit(edit(r, "C2", currency=None), "A1",
     currency=None), State.EXCEPTION, U),
    ("15 null legal_entity", lambda r: edit(r, "P2", legal_entity=None), State.EXCEPTION, U),
    ("15 cap without cap_period", lambda r: edit(r, "C2", **CAPPED), State.EXCEPTION, U),
    ("15 cap_period month", lambda r: edit(r, "C2", cap_period="month", **CAPPED),
     State.BILLED, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("change", "state", "reason"),
    [pytest.param(c, s, r, id=i) for i, c, s, r in MILESTONE_CASES],
)
def test_milestone_rule(
    change: Callable[[Rows], Rows], state: State | None, reason: str | None
) -> None:
    target = line(change(milestone_rows()), M1)
    if state is None:
        assert target is None
        return
    assert target is not None
    assert (target.state, target.reason) == (state, reason)


def test_milestone_unmapped_labor_after_tax() -> None:
    target = line(milestone_rows(), M1, NO_MILESTONE_MAPPING)
    assert target is not None and target.reason == "UNMAPPED_LABOR_CATEGORY"
    tax_first = edit(milestone_rows(), "A1", tax_jurisdiction="XX")
    target = line(tax_first, M1, NO_MILESTONE_MAPPING)
    assert target is not None and target.reason == "UNMAPPED_TAX_JURISDICTION"


def test_milestone_billed_dimensions() -> None:
    target = line(milestone_rows(), M1)
    assert target is not None
    assert (target.billed_amount, target.tax_amount) == (D("5000.00"), D("1000.00"))
    assert (target.erp_item_code, target.revenue_account) == ("FIX-MLS", "4100")
    assert (target.period, target.work_date) == ("2024-03", date(2024, 3, 20))
    assert (target.hours, target.rate, target.cost_center) == (None, None, None)
    assert (target.contract_id, target.project_id, target.currency) == ("C2", "P2", "GBP")


def test_milestone_period_is_utc_month() -> None:
    rows = edit(milestone_rows(), "M1", accepted_at=datetime.fromisoformat(
        "2024-03-31T22:00:00-04:00"))  # fmt: skip
    target = line(rows, M1)
    assert target is not None and target.period == "2024-04"


def test_unmapped_tax_in_mappings_object() -> None:
    target = line(base_rows(), T1, UNMAPPED_TAX)
    assert target is not None and target.reason == "UNMAPPED_TAX_JURISDICTION"


# (case id, world, item, rule that reads the column, what finance is shown)
DETAIL_CASES: list[tuple[str, Rows, tuple[str, str], int, str]] = [
    ("hours", edit(base_rows(), "T1", hours=None), T1, 2, "timesheets.hours=NULL"),
    ("billable", edit(base_rows(), "T1", billable=None), T1, 3, "timesheets.billable=NULL"),
    ("project status", edit(base_rows(), "P1", status=None), T1, 5, "projects.status=NULL"),
    ("contract status", edit(base_rows(), "C1", status="expired"), T1, 7,
     "contracts.status='expired'"),
    ("amendment status", amendment(base_rows(), "withdrawn"), T1, 8,
     "contract_amendments.status='withdrawn'"),
    ("work date", edit(base_rows(), "T1", work_date=None), T1, 9, "timesheets.work_date=NULL"),
    ("start date", edit(base_rows(), "C1", start_date=None), T1, 9,
     "contracts.start_date=NULL"),
    ("contract type", edit(base_rows(), "C1", contract_type="fixed_fee"), T1, 10,
     "contracts.contract_type='fixed_fee'"),
    ("contract currency", edit(base_rows(), "C1", currency=None), T1, 12,
     "contracts.currency=NULL"),
    ("account currency", edit(base_rows(), "A1", currency="gbp"), T1, 12,
     "accounts.currency='gbp'"),
    ("rate", edit(base_rows(), "R1", hourly_rate=D("-150.00")), T1, 14,
     "contract_rates.hourly_rate=-150.00"),
    ("rate start", edit(base_rows(), "R1", effective_from=None), T1, 14,
     "contract_rates.effective_from=NULL"),
    ("legal entity", edit(base_rows(), "P1", legal_entity=None), T1, 15,
     "projects.legal_entity=NULL"),
    ("cost center", edit(base_rows(), "E1", cost_center=None), T1, 15,
     "employees.cost_center=NULL"),
    ("cap period", edit(base_rows(), "C1", cap_period="week", **CAPPED), T1, 15,
     "contracts.cap_period='week'"),
    ("retainer", edit(base_rows(), "C1", contract_type="retainer",
     retainer_hours_monthly=D("-8")), T1, 15, "contracts.retainer_hours_monthly=-8"),
    ("milestone amount", edit(milestone_rows(), "M1", amount=None), M1, 2,
     "milestones.amount=NULL"),
    ("milestone contract type", edit(milestone_rows(), "C2", contract_type=None), M1, 10,
     "contracts.contract_type=NULL"),
    ("milestone accepted_at", edit(milestone_rows(), "M1", accepted_at=None), M1, 9,
     "milestones.accepted_at=NULL"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("rows", "key", "rule", "shown"),
    [pytest.param(w, k, n, d, id=i) for i, w, k, n, d in DETAIL_CASES],
)
def test_unexpected_value_names_column_and_value(
    rows: Rows, key: tuple[str, str], rule: int, shown: str
) -> None:
    target = line(rows, key)
    assert target is not None and target.reason == U
    item = rows["T1" if key == T1 else "M1"]
    assert isinstance(item, Timesheet | Milestone)
    found = unexpected(item, context(World.of(rows.values())), MAPPINGS)
    assert found is not None and (found.rule, str(found)) == (rule, shown)


@pytest.mark.parametrize(
    "rows",
    [base_rows(), edit(base_rows(), "P1", status="on_hold"), edit(base_rows(), "T1",
     status="invoiced"), edit(milestone_rows(), "C2", contract_type="retainer")],
    ids=["billed", "other rule", "no line state", "milestone of another type"],
)  # fmt: skip
def test_no_unexpected_value_when_another_outcome_decides(rows: Rows) -> None:
    ctx = context(World.of(rows.values()))
    for name in ("T1", "M1"):
        item = rows.get(name)
        if isinstance(item, Timesheet | Milestone):
            assert unexpected(item, ctx, MAPPINGS) is None


def test_schedule_keeps_values_the_spec_does_not_list() -> None:
    rows = edit(edit(milestone_rows(), "M1", status="invoiced"), "C2", currency=None)
    schedule = targets(rows)[1]
    assert schedule["M1"].status == "invoiced" and schedule["M1"].currency is None
