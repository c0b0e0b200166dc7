"""Why a line is where it is: the rule that fired, the source rows it read, the ERP rows.

:func:`explain` takes the current source rows (a :class:`~dataflows.billing.batch.World`,
e.g. from :func:`ops.reads.audit.sources.read_world`), narrows them to what the rules of SPEC 2
read for one item (its project, contract, account, employee, rates, pending amendments, and
the other items of the same contract, which allocation needs), and runs the pure batch rules
(:func:`~dataflows.billing.batch.compute_targets`) on that: the decision is the same as over
the whole world because allocation is per contract. A line excepted ``UNEXPECTED_SOURCE_VALUE`` also
gets the column and value that decided it (:func:`~dataflows.billing.rules.unexpected`), in
its decision path and as ``unexpected``. The ERP side is the line's
``billing_line_state`` row and its ledger entries with their source positions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Connection, select

from billsync.model import (
    Account,
    Contract,
    ContractAmendment,
    ContractRate,
    Employee,
    Milestone,
    Project,
    Row,
    Timesheet,
)
from dataflows.billing.batch import World, compute_targets
from dataflows.billing.batch import context as rules_context
from dataflows.billing.mappings import Mappings
from dataflows.billing.rules import Reason, Unexpected, unexpected
from dataflows.billing.target import LineTarget, SourceType
from sinks.erp import tables as t

# SPEC 2: the rule number of each reason; billed / cap / retainer outcomes come from rule 15
RULE_OF: dict[str, int] = {
    Reason.INVALID_HOURS: 2,
    Reason.NOT_BILLABLE: 3,
    Reason.PROJECT_UNKNOWN: 4,
    Reason.EMPLOYEE_UNKNOWN: 4,
    Reason.PROJECT_ON_HOLD: 5,
    Reason.PROJECT_CLOSED: 5,
    Reason.CONTRACT_UNKNOWN: 6,
    Reason.ACCOUNT_UNKNOWN: 6,
    Reason.CONTRACT_SUSPENDED: 7,
    Reason.CONTRACT_INACTIVE: 7,
    Reason.AMENDMENT_PENDING: 8,
    Reason.OUTSIDE_CONTRACT_TERM: 9,
    Reason.MILESTONE_CONTRACT: 10,
    Reason.CUSTOMER_NOT_IN_ERP: 11,
    Reason.CURRENCY_MISMATCH: 12,
    Reason.UNMAPPED_LABOR_CATEGORY: 13,
    Reason.UNMAPPED_TAX_JURISDICTION: 13,
    Reason.NO_RATE: 14,
    Reason.AMBIGUOUS_RATE: 14,
    Reason.COVERED_BY_RETAINER: 15,
    Reason.BILLING_CAP_EXCEEDED: 15,
}

RULES: dict[int, str] = {
    1: "line approved and not deleted",
    2: "0 < hours <= 24",
    3: "billable is true",
    4: "project and employee known",
    5: "project not on_hold / closed",
    6: "contract and account known",
    7: "contract not suspended / draft / terminated",
    8: "no pending amendment of the contract",
    9: "work date within the contract term",
    10: "contract type is not milestone",
    11: "account has an erp_customer_id",
    12: "contract currency equals account currency",
    13: "labor category and tax jurisdiction mapped",
    14: "exactly one rate for the labor category on the work date",
    15: "candidate: rate x hours, then retainer coverage and cap (allocation per contract)",
}
# UNEXPECTED_SOURCE_VALUE fires at the place of the rule that reads the column (rules.py)
UNEXPECTED_AT: dict[int, str] = {
    2: "hours / milestone amount present",
    3: "billable is true or false",
    10: "contract type is one the SPEC lists",
    15: "before rule 15: ledger dimensions and allocation parameters are values the SPEC lists",
}


@dataclass
class Explanation:
    source_type: str
    source_id: str
    item: Row | None
    target: LineTarget | None
    rule: int  # the rule that decided (1: no line state; 15: allocation)
    path: list[str]
    rows: list[tuple[str, Row]] = field(default_factory=list)  # (table, row) the rules read
    line_state: dict[str, Any] | None = None
    ledger: list[dict[str, Any]] = field(default_factory=list)
    unexpected: str | None = None  # UNEXPECTED_SOURCE_VALUE: "table.column=value"

    def as_dict(self) -> dict[str, Any]:
        return {
            "source_type": self.source_type,
            "source_id": self.source_id,
            "item": asdict(self.item) if self.item is not None else None,
            "rule": self.rule,
            "path": self.path,
            "target": _target_dict(self.target),
            "rows": [{"table": name, "row": asdict(row)} for name, row in self.rows],
            "line_state": self.line_state,
            "ledger": self.ledger,
            "unexpected": self.unexpected,
        }


def _target_dict(target: LineTarget | None) -> dict[str, Any] | None:
    if target is None:
        return None
    out = asdict(target)
    out["source_type"] = target.source_type.value
    out["state"] = target.state.value
    return out


def _context(world: World, item: Row) -> list[tuple[str, Row]]:
    """The rows the rules read for ``item``, and the contract's other items (allocation)."""
    rows: list[tuple[str, Row]] = []
    project_id = getattr(item, "project_id", None)
    project = world.table("projects").get(project_id) if project_id is not None else None
    if isinstance(item, Timesheet) and item.employee_id is not None:
        employee = world.table("employees").get(item.employee_id)
        if isinstance(employee, Employee):
            rows.append(("employees", employee))
    if not isinstance(project, Project):
        return rows
    rows.append(("projects", project))
    contract = world.table("contracts").get(project.contract_id or "")
    if not isinstance(contract, Contract):
        return rows
    rows.append(("contracts", contract))
    account = world.table("accounts").get(contract.account_id or "")
    if isinstance(account, Account):
        rows.append(("accounts", account))
    cid = contract.contract_id
    for name in ("contract_rates", "contract_amendments"):
        for row in world.table(name).values():
            if isinstance(row, ContractRate | ContractAmendment) and row.contract_id == cid:
                rows.append((name, row))
    return rows


def _siblings(world: World, contract_id: str) -> list[Row]:
    """Timesheets and milestones of every project of the contract (allocation's input)."""
    projects = {
        p.project_id
        for p in world.table("projects").values()
        if isinstance(p, Project) and p.contract_id == contract_id
    }
    out: list[Row] = [
        *(p for p in world.table("projects").values() if p.key in projects),
        *(e for e in world.table("employees").values()),
    ]
    for name in ("timesheets", "milestones"):
        out += [r for r in world.table(name).values() if getattr(r, "project_id", None) in projects]
    return out


def explain(
    world: World, mappings: Mappings, source_type: SourceType, source_id: str, erp: Connection
) -> Explanation:
    """The decision for one item from the current source rows, and what the ERP holds."""
    table = "timesheets" if source_type is SourceType.TIMESHEET else "milestones"
    item = world.table(table).get(source_id)
    context = _context(world, item) if item is not None else []
    contract = next((r for n, r in context if n == "contracts"), None)
    sub: list[Row] = [r for _, r in context]
    if isinstance(contract, Contract):
        sub += _siblings(world, contract.contract_id)
    if item is not None:
        sub.append(item)
    narrowed = World.of(sub)
    lines, _ = compute_targets(narrowed, mappings)
    target = lines.get((source_type.value, source_id))
    odd = None
    if target is not None and target.reason == Reason.UNEXPECTED_SOURCE_VALUE:
        assert isinstance(item, Timesheet | Milestone)  # a target has its source row
        odd = unexpected(item, rules_context(narrowed), mappings)
    rule, path = _path(item, target, odd)
    employee = next((r for n, r in context if n == "employees"), None)
    category = employee.labor_category if isinstance(employee, Employee) else None
    shown = [(n, r) for n, r in context if not _irrelevant(r, category)]
    return Explanation(
        source_type.value,
        source_id,
        item,
        target,
        rule,
        path,
        shown,
        _line_state(erp, source_type.value, source_id),
        _ledger(erp, source_type.value, source_id),
        str(odd) if odd is not None else None,
    )


def _irrelevant(row: Row, category: str | None) -> bool:
    """Rates of other labor categories and approved or rejected amendments are noise (rule 8
    reads pending amendments and those of a status the SPEC does not list)."""
    if isinstance(row, ContractAmendment):
        return row.status in ("approved", "rejected")
    if isinstance(row, ContractRate):
        return category is not None and row.labor_category != category
    return False


def _path(
    item: Row | None, target: LineTarget | None, odd: Unexpected | None = None
) -> tuple[int, list[str]]:
    if target is None:
        what = "deleted" if item is None else f"status {getattr(item, 'status', None)!r}"
        if isinstance(item, Milestone) and item.status == "accepted":
            return 1, ["milestone of a known contract of another type: not billed, no line state"]
        return 1, [f"rule 1 fired: {what} — no line state, the ledger nets to 0"]
    reason = target.reason
    if reason == Reason.INVALID_AMOUNT:
        return 2, ["milestone amount must be > 0: fired → exception INVALID_AMOUNT"]
    rule = odd.rule if odd is not None else RULE_OF.get(reason or "", 15)
    first = 4 if target.source_type is SourceType.MILESTONE else 1
    path = [f"rule {n}: {RULES[n]} — passed" for n in range(first, rule) if n in RULES]
    if target.source_type is SourceType.MILESTONE:
        path = [p for p in path if not p.startswith(("rule 10:", "rule 14:"))]
        if odd is not None and odd.rule in (2, 10):  # checked before the rules 4-9
            path = []
    outcome = f"{target.state.value}" + (f" {reason}" if reason else "")
    if odd is not None:
        label = f"rule {odd.rule}: {UNEXPECTED_AT.get(odd.rule, RULES[odd.rule])}"
        path.append(f"{label} — FIRED → {outcome}: {odd} is not a value the SPEC lists")
    elif rule == 15:
        path.append(
            f"rule 15: {RULES[15]} — rate {target.rate}, covered hours {target.covered_hours}, "
            f"billable {target.billable_amount}, billed {target.billed_amount}, "
            f"held {target.held_amount}, tax {target.tax_amount} → {outcome}"
        )
    else:
        path.append(f"rule {rule}: {RULES[rule]} — FIRED → {outcome}")
    return rule, path


def _line_state(conn: Connection, source_type: str, source_id: str) -> dict[str, Any] | None:
    s = t.billing_line_state
    row = (
        conn.execute(select(s).where(s.c.source_type == source_type, s.c.source_id == source_id))
        .mappings()
        .first()
    )
    return dict(row) if row is not None else None


def _ledger(conn: Connection, source_type: str, source_id: str) -> list[dict[str, Any]]:
    tx = t.erp_billing_transactions
    query = (
        select(
            tx.c.seq,
            tx.c.entry_type,
            tx.c.amount,
            tx.c.tax_amount,
            tx.c.period,
            tx.c.source_position,
            tx.c.created_at,
            tx.c.transaction_id,
        )
        .where(tx.c.source_type == source_type, tx.c.source_id == source_id)
        .order_by(tx.c.seq)
    )
    return [dict(r) for r in conn.execute(query).mappings()]
