"""Which items a changed row re-classifies, and which contracts it re-allocates.

=====================  ===========================================================
changed table          items re-classified
=====================  ===========================================================
timesheets             that line (its old and new project/employee follow the row)
milestones             that milestone (line and schedule)
employees              the lines of that employee
projects               the lines and milestones of that project
contracts              the items of every project pointing at it (+ re-allocation)
accounts               the items of every contract of that account
contract_rates         the items of the rate's old and new contract
contract_amendments    the items of the amendment's old and new contract
=====================  ===========================================================

A change of a referenced row that touches none of the columns the rules read
(:data:`READ`) re-classifies nothing. The items are found through the reverse indexes of
``index.py`` (after they were updated for the change).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from billsync.model import Contract, ContractAmendment, ContractRate, Row, Timesheet
from dataflows.billing.index import MS, TS
from dataflows.billing.rules import Context, contract_unexpected
from dataflows.billing.target import LineKey

if TYPE_CHECKING:  # EngineState stays in engine.py (pickles name it there), which imports us
    from dataflows.billing.engine import EngineState

# the columns of referenced rows that classification or the schedule reads
READ: dict[str, tuple[str, ...]] = {
    "employees": ("labor_category", "cost_center"),
    "projects": ("contract_id", "status", "legal_entity"),
    "contracts": (
        "account_id",
        "contract_type",
        "status",
        "currency",
        "start_date",
        "end_date",
    ),
    "accounts": ("erp_customer_id", "currency", "tax_jurisdiction"),
    "contract_amendments": ("contract_id", "status"),
    "contract_rates": (
        "contract_id",
        "labor_category",
        "hourly_rate",
        "effective_from",
        "effective_to",
    ),
}


# amendment statuses that decide nothing (rule 8 reads pending and unlisted statuses only)
_QUIET_AMENDMENT = frozenset({"approved", "rejected"})


def _unexpected_moved(old: Row | None, new: Row | None) -> bool:
    """A contract's allocation parameters became, or stopped being, unexpected values."""
    if not isinstance(old, Contract) or not isinstance(new, Contract):
        return False  # a contract appearing or going away re-classifies anyway (_same)
    return contract_unexpected(old) != contract_unexpected(new)


def _same(old: Row | None, new: Row | None, columns: tuple[str, ...]) -> bool:
    """Both rows exist and agree on ``columns``."""
    if old is None or new is None:
        return False
    return all(getattr(old, c) == getattr(new, c) for c in columns)


def dependents(
    st: EngineState, ctx: Context, table: str, key: str, old: Row | None, new: Row | None
) -> tuple[set[LineKey], set[str]]:
    """Items to re-classify, and contracts whose groups must all be re-allocated.

    A change of a referenced row that touches none of the columns the rules read (see
    :data:`READ`) re-classifies nothing; a rate change re-classifies only the
    timesheets whose employee has the rate's (old or new) labor category; an amendment
    change only matters when it is or was pending (or of a status the SPEC does not list:
    rule 8's unexpected value); a contract change that touches only allocation columns
    re-classifies when it changes :func:`~dataflows.billing.rules.contract_unexpected`.
    """
    items: set[LineKey] = set()
    contracts: set[str] = set()
    if table == "timesheets":
        items.add((TS, key))
    elif table == "milestones":
        items.add((MS, key))
    elif table == "contracts":
        contracts.add(key)  # cap, cap period or retainer may have changed
        if not _same(old, new, READ[table]) or _unexpected_moved(old, new):
            _items_of_contract(st, key, items)
    elif not _same(old, new, READ.get(table, ())):
        if table == "employees":
            items.update((TS, k) for k in st.ts_by_employee.get(key, ()))
        elif table == "projects":
            _items_of_project(st, key, items)
        elif table == "accounts":
            for contract_id in st.contracts_by_account.get(key, ()):
                _items_of_contract(st, contract_id, items)
        elif table == "contract_amendments":
            for row in (old, new):
                assert row is None or isinstance(row, ContractAmendment)
                if row is not None and row.status not in _QUIET_AMENDMENT:
                    _items_of_contract(st, row.contract_id, items)
        elif table == "contract_rates":
            _items_of_rate(st, ctx, old, new, items)
    return items, contracts


def _items_of_contract(st: EngineState, contract_id: str | None, out: set[LineKey]) -> None:
    if contract_id is None:
        return
    for project_id in st.projects_by_contract.get(contract_id, ()):
        _items_of_project(st, project_id, out)


def _items_of_project(st: EngineState, project_id: str | None, out: set[LineKey]) -> None:
    if project_id is None:
        return
    out.update((TS, k) for k in st.ts_by_project.get(project_id, ()))
    out.update((MS, k) for k in st.ms_by_project.get(project_id, ()))


def _items_of_rate(
    st: EngineState, ctx: Context, old: Row | None, new: Row | None, out: set[LineKey]
) -> None:
    categories: set[str | None] = set()
    scope: set[LineKey] = set()
    for row in (old, new):
        assert row is None or isinstance(row, ContractRate)
        if row is not None:
            categories.add(row.labor_category)
            _items_of_contract(st, row.contract_id, scope)
    for item in scope:
        if item[0] != TS:
            continue  # milestones use no rate
        ts = st.rows["timesheets"].get(item[1])
        employee = ctx.employee(ts.employee_id) if isinstance(ts, Timesheet) else None
        if employee is not None and employee.labor_category in categories:
            out.add(item)
