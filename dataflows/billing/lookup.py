"""The rules' look-ups of one referenced row, over tables of current rows.

The batch world (``batch.py``) and the incremental engine (``index.py``) both hold the
current rows as table name -> {primary key as text: row}. :class:`RowLookup` is the part of
the rules' :class:`~dataflows.billing.rules.Context` that reads one row of such tables by its
key; the amendments and rates of a contract come from each one's own per-contract index.
"""

from __future__ import annotations

from collections.abc import Mapping

from billsync.model import Account, Contract, Employee, Project, Row


class RowLookup:
    """Project, employee, contract and account by key (None: no such row)."""

    # four explicit methods rather than one generic look-up: classification calls them for
    # every item it classifies, and a generic helper would add a call to each

    def __init__(self, tables: Mapping[str, Mapping[str, Row]]) -> None:
        self._tables = tables  # every table the rules look up must be present

    def project(self, project_id: str | None) -> Project | None:
        row = self._tables["projects"].get(project_id) if project_id is not None else None
        return row if isinstance(row, Project) else None

    def employee(self, employee_id: str | None) -> Employee | None:
        row = self._tables["employees"].get(employee_id) if employee_id is not None else None
        return row if isinstance(row, Employee) else None

    def contract(self, contract_id: str | None) -> Contract | None:
        row = self._tables["contracts"].get(contract_id) if contract_id is not None else None
        return row if isinstance(row, Contract) else None

    def account(self, account_id: str | None) -> Account | None:
        row = self._tables["accounts"].get(account_id) if account_id is not None else None
        return row if isinstance(row, Account) else None
