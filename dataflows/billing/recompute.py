"""One pass of the engine over a changed row: store it, re-classify, re-allocate, emit.

:meth:`Recomputer.apply_row` stores a row (and its reverse indexes, ``index.py``), asks
``fanout.py`` which items and contracts it touches, and :meth:`Recomputer.recompute`
classifies each of those items alone (:mod:`~dataflows.billing.rules`): an item whose
outcome is a final target gets it at once, a candidate that moved joins or leaves its
contract's groups, and ``books.py`` re-allocates the contracts whose candidates changed.
Milestones get their invoice-schedule line again. The result holds only the lines and
schedule lines whose target differs from before (``output.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from billsync.model import Milestone, Row, Timesheet
from dataflows.billing.books import Books, Touch
from dataflows.billing.fanout import dependents
from dataflows.billing.index import MS, TS, Rows
from dataflows.billing.output import NOTHING, Changes
from dataflows.billing.rules import (
    Candidate,
    Outcome,
    classify_milestone,
    classify_timesheet,
    schedule_line,
)
from dataflows.billing.target import Delta, LineKey, ScheduleUpdate

_ITEM_TABLES = frozenset({"timesheets", "milestones"})

if TYPE_CHECKING:  # EngineState stays in engine.py (pickles name it there), which imports us
    from dataflows.billing.engine import EngineState


class Recomputer:
    """Keeps candidates, line targets and schedule lines a function of the rows."""

    def __init__(self, st: EngineState, rows: Rows, books: Books) -> None:
        self._st = st
        self._rows = rows
        self._books = books

    def apply_row(self, table: str, key: str, new: Row | None) -> Delta:
        """Store the row of ``table`` at ``key`` (None: deleted) and recompute what
        depends on it."""
        rows = self._st.rows[table]
        old = rows.get(key)
        if old == new:
            return Delta(notes=("no change to the stored row: nothing to do",))
        if new is None:
            del rows[key]
        else:
            rows[key] = new
        self._rows.reindex(table, key, old, new)
        if (
            table == "timesheets"
            and (old is None or getattr(old, "status", None) != "approved")
            and (new is None or getattr(new, "status", None) != "approved")
        ):
            return NOTHING  # rule 1 before and after: no line state, no candidate, no group
        if self._st.shards > 1 and table in _ITEM_TABLES and not self._mine(old, new):
            return NOTHING  # another shard's item before and after: it has no line here
        items, contracts = dependents(self._st, self._rows, table, key, old, new)
        return self.recompute(items, contracts)

    def _mine(self, old: Row | None, new: Row | None) -> bool:
        """Whether this shard evaluates an item row, before or after its change (an item
        holds a line or candidate only in the shard that owns its row: ``shards.py``)."""
        owns = self._rows.owns
        return (old is not None and owns(getattr(old, "project_id", None))) or (
            new is not None and owns(getattr(new, "project_id", None))
        )

    def recompute(
        self,
        items: set[LineKey],
        contracts: set[str],
        finals_moved: dict[str, Touch] | None = None,
    ) -> Delta:
        """Re-classify ``items`` and re-allocate ``contracts`` incrementally. ``finals_moved``:
        the contracts whose final consumption changed (a close, a final item released), each
        with its candidates that became final; their groups whose limit moved are re-run."""
        st = self._st
        books = self._books
        out = Changes(st.lines)
        touched: dict[str, Touch] = {c: {} for c in contracts}  # contract -> its changes
        for c, gone in (finals_moved or {}).items():
            touched.setdefault(c, {}).update(gone)
        for item in items:  # any order: each item is classified alone
            outcome = self._classify(item)
            before = st.candidates.get(item)
            moved = before != outcome
            if before is not None and moved:
                del st.candidates[item]
                books.leave(before, item)
                touched.setdefault(before.contract_id, {})[item] = (before, None)
            if isinstance(outcome, Candidate):
                if moved:
                    st.candidates[item] = outcome
                    books.join(outcome, item)
                    touch = touched.setdefault(outcome.contract_id, {})
                    touch[item] = (touch[item][0] if item in touch else None, outcome)
            else:
                out.set_line(item, outcome)
            if item[0] == MS:
                out.schedule.extend(self.schedule(item[1]))
        books.update(touched, set(finals_moved or ()), out)
        return out.delta()

    def schedule(self, milestone_id: str) -> list[ScheduleUpdate]:
        """Re-derive a milestone's invoice-schedule line: its update, if it changed."""
        st = self._st
        ms = st.rows["milestones"].get(milestone_id)
        assert ms is None or isinstance(ms, Milestone)
        owned = ms is None or st.shards <= 1 or self._rows.owns(ms.project_id)
        new = schedule_line(ms, self._rows) if owned else None
        old = st.schedule.get(milestone_id)
        if new == old:
            return []
        if new is None:
            del st.schedule[milestone_id]
        else:
            st.schedule[milestone_id] = new
        return [ScheduleUpdate(milestone_id, old, new)]

    def _classify(self, item: LineKey) -> Outcome:
        source_type, key = item
        st = self._st
        if source_type == TS:
            ts = st.rows["timesheets"].get(key)
            assert ts is None or isinstance(ts, Timesheet)
            if ts is not None and st.shards > 1 and not self._rows.owns(ts.project_id):
                return None  # another shard's item: no line here (shards.py)
            return classify_timesheet(ts, self._rows, st.mappings)
        ms = st.rows["milestones"].get(key)
        assert ms is None or isinstance(ms, Milestone)
        if ms is not None and st.shards > 1 and not self._rows.owns(ms.project_id):
            return None
        return classify_milestone(ms, self._rows, st.mappings)
