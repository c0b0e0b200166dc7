"""Every rule and reason of SPEC 2, one tiny world per row, in the order of the table."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime

import pytest

from dataflows.billing.mappings import Mappings
from dataflows.billing.target import State
from dataflows.model import ContractAmendment, ContractRate, Row

from .worlds import NO_MILESTONE_MAPPING, D, base_rows, edit, line, milestone_rows

T1 = ("timesheet", "1")
M1 = ("milestone", "M1")
Rows = dict[str, Row]


def add(rows: Rows, name: str, row: Row) -> Rows:
    out = dict(rows)
    out[name] = row
    return out


def pending(rows: Rows, contract: str = "C1") -> Rows:
    return add(rows, "AM1", ContractAmendment("AM1", contract, "pending", date(2024, 5, 1)))


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
    ("2 null hours", lambda r: edit(r, "T1", hours=None), State.EXCEPTION, "INVALID_HOURS"),
    ("2 beats 3", lambda r: edit(r, "T1", hours=D("0"), billable=False), State.EXCEPTION,
     "INVALID_HOURS"),
    ("3 not billable", lambda r: edit(r, "T1", billable=False), State.NON_BILLABLE,
     "NOT_BILLABLE"),
    ("3 null billable", lambda r: edit(r, "T1", billable=None), State.NON_BILLABLE,
     "NOT_BILLABLE"),
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
    ("9 null work_date", lambda r: edit(r, "T1", work_date=None), State.EXCEPTION,
     "OUTSIDE_CONTRACT_TERM"),
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
    ("14 null hourly_rate", lambda r: edit(r, "R1", hourly_rate=None), State.EXCEPTION,
     "NO_RATE"),
    ("14 ambiguous", lambda r: add(r, "R2", ContractRate("R2", "C1", "CONSULTANT", D("160"),
     date(2024, 3, 1), date(2024, 3, 31))), State.EXCEPTION, "AMBIGUOUS_RATE"),
    ("14 adjacent rates", lambda r: add(edit(r, "R1", effective_to=date(2024, 2, 29)), "R2",
     ContractRate("R2", "C1", "CONSULTANT", D("160"), date(2024, 3, 1), None)), State.BILLED,
     None),
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
    ("null amount", lambda r: edit(r, "M1", amount=None), State.EXCEPTION, "INVALID_AMOUNT"),
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
    ("9 null accepted_at", lambda r: edit(r, "M1", accepted_at=None), State.EXCEPTION,
     "OUTSIDE_CONTRACT_TERM"),
    ("11 not in ERP", lambda r: edit(r, "A1", erp_customer_id=None), State.HELD,
     "CUSTOMER_NOT_IN_ERP"),
    ("12 currency", lambda r: edit(r, "C2", currency="EUR"), State.EXCEPTION,
     "CURRENCY_MISMATCH"),
    ("13 tax", lambda r: edit(r, "A1", tax_jurisdiction="XX"), State.EXCEPTION,
     "UNMAPPED_TAX_JURISDICTION"),
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
