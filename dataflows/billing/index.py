"""The engine's source rows and reverse indexes, and the rules' Context over them.

:class:`~dataflows.billing.engine.EngineState` holds the current row of every key of the
source tables and, per referenced key, the keys of the rows referencing it (:data:`INDEXES`;
plus the pending amendments per contract). :class:`Rows` keeps the indexes in step with a
changed row (:meth:`Rows.reindex`) and answers the rules' look-ups
(:class:`~dataflows.billing.rules.Context`) from them; ``fanout.py`` reads the same indexes
to find the items a change touches.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from billsync.model import ContractAmendment, ContractRate, Row
from dataflows.billing.lookup import RowLookup
from dataflows.billing.rules import AMENDMENT_STATUSES
from dataflows.billing.shards import shard_of
from dataflows.billing.target import SourceType

if TYPE_CHECKING:  # EngineState stays in engine.py (pickles name it there), which imports us
    from dataflows.billing.engine import EngineState

TS = SourceType.TIMESHEET.value
MS = SourceType.MILESTONE.value
Index = dict[str, set[str]]  # referenced key -> keys of the referencing rows

# table -> (index attribute of the state, foreign-key attribute of the row) per reverse index
INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    "timesheets": (("ts_by_project", "project_id"), ("ts_by_employee", "employee_id")),
    "milestones": (("ms_by_project", "project_id"),),
    "projects": (("projects_by_contract", "contract_id"),),
    "contracts": (("contracts_by_account", "account_id"),),
    "contract_rates": (("rates_by_contract", "contract_id"),),
}


def link(index: Index, ref: str | None, key: str) -> None:
    if ref is not None:
        index.setdefault(ref, set()).add(key)


def unlink(index: Index, ref: str | None, key: str) -> None:
    if ref is not None and ref in index:
        index[ref].discard(key)
        if not index[ref]:
            del index[ref]


class Rows(RowLookup):
    """The rules' :class:`~dataflows.billing.rules.Context` over an engine state's rows, and
    the upkeep of its reverse indexes."""

    def __init__(self, st: EngineState) -> None:
        super().__init__(st.rows)
        self._st = st
        # per contract, its amendments with a status the SPEC does not list (rule 8 reports
        # them): derived, not pickled, so that a classification does not scan every amendment
        # a contract ever had
        self._odd: Index = {}
        # contract -> its shard (derived: a digest per contract, not per item)
        self._shard: dict[str | None, int] = {}
        for key, row in st.rows["contract_amendments"].items():
            if isinstance(row, ContractAmendment) and row.status not in AMENDMENT_STATUSES:
                link(self._odd, row.contract_id, key)

    def owns(self, project_id: str | None) -> bool:
        """Whether this state's shard evaluates the items of ``project_id``: the shard of
        the project's contract (``shards.py``); always, unsharded."""
        st = self._st
        if st.shards <= 1:
            return True
        project = self.project(project_id)
        contract_id = project.contract_id if project is not None else None
        shard = self._shard.get(contract_id)
        if shard is None:
            shard = self._shard[contract_id] = shard_of(contract_id, st.shards)
        return shard == st.shard

    def amendment_pending(self, contract_id: str) -> bool:
        return contract_id in self._st.pending_by_contract

    def odd_amendments(self, contract_id: str) -> Iterable[ContractAmendment]:
        ids = self._odd.get(contract_id)
        if not ids:
            return ()
        table = self._st.rows["contract_amendments"]
        return [table[i] for i in ids]  # type: ignore[misc]  # the amendments table holds ContractAmendment rows only

    def rates(self, contract_id: str) -> Iterable[ContractRate]:
        table = self._st.rows["contract_rates"]
        ids = self._st.rates_by_contract.get(contract_id, ())
        return [table[i] for i in ids]  # type: ignore[misc]  # the rates table holds ContractRate rows only

    def reindex(self, table: str, key: str, old: Row | None, new: Row | None) -> None:
        """Move ``key`` in the indexes of ``table`` from what ``old`` references to what
        ``new`` does (None: no row)."""
        st = self._st
        for index_name, attr in INDEXES.get(table, ()):
            index: Index = getattr(st, index_name)
            before = getattr(old, attr) if old is not None else None
            after = getattr(new, attr) if new is not None else None
            if before != after:
                unlink(index, before, key)
                link(index, after, key)
        if table == "contract_amendments":
            pending = st.pending_by_contract
            if isinstance(old, ContractAmendment) and old.status == "pending":
                unlink(pending, old.contract_id, key)
            if isinstance(new, ContractAmendment) and new.status == "pending":
                link(pending, new.contract_id, key)
            if isinstance(old, ContractAmendment) and old.status not in AMENDMENT_STATUSES:
                unlink(self._odd, old.contract_id, key)
            if isinstance(new, ContractAmendment) and new.status not in AMENDMENT_STATUSES:
                link(self._odd, new.contract_id, key)
