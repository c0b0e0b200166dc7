"""Closed periods in the engine (SPEC 2b): closes, reopens and changes of final items.

The pure parts live in ``periods.py`` (finality, digests) and ``finals.py`` (what is kept of
final items). At a close of P every open item of P or before in a final state becomes final:
it leaves the open state (row, candidate, target, schedule line) and only its
:class:`~dataflows.billing.finals.FinalStub` stays; it leaves its allocation groups, and every
group of its contracts whose limit moved (what the final items left) is re-run. A reopen puts
the period's items in limbo: they wait for their rows (a re-snapshot). A change of a final
item's own row that alters a billing column releases it: it is evaluated as an open item
again and always emitted; the groups whose limit it freed are re-run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from billsync.change import Change
from billsync.model import Row
from dataflows.billing.books import Books, Touch
from dataflows.billing.finals import FinalStub
from dataflows.billing.index import MS, TS, Rows
from dataflows.billing.money import ZERO
from dataflows.billing.output import Merge, line_key
from dataflows.billing.periods import CLOSE, REOPEN, becomes_final, is_closed, own_digest
from dataflows.billing.recompute import Recomputer
from dataflows.billing.target import Delta, LineKey, LineUpdate, PeriodEvent, ScheduleUpdate

if TYPE_CHECKING:  # EngineState stays in engine.py (pickles name it there), which imports us
    from dataflows.billing.engine import EngineState


def closed_through(closed: set[str]) -> str | None:
    """The latest closed accounting period (None: none closed)."""
    return max(closed) if closed else None


class Closes:
    """Applies the changes of ``accounting_periods`` rows and of final items' rows."""

    def __init__(self, st: EngineState, rows: Rows, books: Books, recomputer: Recomputer) -> None:
        self._st = st
        self._rows = rows
        self._books = books
        self._recomputer = recomputer
        # the latest closed period, kept here because it is read for every unit applied
        # (``BillingEngine.closed_through``) and ``max`` over the closed set grows with history;
        # only this class changes ``st.closed``
        self.latest = closed_through(st.closed)

    def period(self, period: str, new: Row | None) -> Delta:
        """A change of an ``accounting_periods`` row: a close, a reopen, or nothing."""
        st = self._st
        if new is None:
            st.rows["accounting_periods"].pop(period, None)
        else:
            st.rows["accounting_periods"][period] = new
        if is_closed(new) and period not in st.closed:
            return self._close(period)
        if not is_closed(new) and period in st.closed:
            st.closed.discard(period)
            self.latest = closed_through(st.closed)
            st.finals.limbo.add(period)  # its items wait for their rows (a re-snapshot)
            return Delta(period=PeriodEvent(REOPEN, period, self.latest))
        return Delta(notes=(f"accounting period {period}: no change of status",))

    def _close(self, period: str) -> Delta:
        """Close ``period``: every open item of it or before in a final state becomes final
        and leaves the open state; the allocation of its contracts is rebuilt against what
        the final items consumed. Items waiting in an earlier reopened period are final
        again (their stubs never changed)."""
        st = self._st
        st.closed.add(period)
        self.latest = closed_through(st.closed)
        st.finals.limbo = {p for p in st.finals.limbo if p > period}
        stubs: list[FinalStub] = []
        leaving: dict[str, Touch] = {}  # contract -> its candidates that became final
        for key, target in list(st.lines.items()):
            if not becomes_final(target, period):
                continue
            cand = st.candidates.pop(key, None)
            table = "timesheets" if key[0] == TS else "milestones"
            row = st.rows[table].pop(key[1], None)
            at = st.positions.get(table, {}).pop(key[1], None)
            stubs.append(
                FinalStub(
                    key=key,
                    final_period=period,
                    contract_id=cand.contract_id if cand is not None else None,
                    month=cand.month if cand is not None else None,
                    covered=target.covered_hours if cand is not None else ZERO,
                    billed=target.billed_amount if cand is not None else ZERO,
                    digest=own_digest(row),
                    lsn=at if isinstance(at, int) else -1,
                )
            )
            del st.lines[key]
            if cand is not None:
                self._books.leave(cand, key)
                leaving.setdefault(cand.contract_id, {})[key] = (cand, None)
            self._rows.reindex(table, key[1], row, None)
            if key[0] == MS:
                st.schedule.pop(key[1], None)
        if stubs:
            st.finals.add(period, stubs)
        delta = self._recomputer.recompute(set(), set(), leaving)
        return Delta(
            lines=delta.lines,
            schedule=delta.schedule,
            period=PeriodEvent(CLOSE, period, self.latest),
        )

    def apply_to_final(
        self, change: Change, item: LineKey, stub: FinalStub, new: Row | None
    ) -> Delta:
        """A change of a final item's own row (or of one waiting in a reopened period).

        A final item whose billing columns did not change stays final (nothing else of it
        is kept to compare). Otherwise it leaves its segment, frees what it consumed, and is
        evaluated as an open item; the update is always emitted (the ERP holds its old
        figures, the flow does not) and marked ``reopened`` when it was final.
        """
        st = self._st
        finals = st.finals
        was_final = finals.is_final(stub)
        if was_final and new is not None and own_digest(new) == stub.digest:
            return Delta(notes=("final item: no billing column of its own row changed",))
        finals.release(stub)
        freed_from: dict[str, Touch] = {}  # its contract, with no candidate leaving it
        if stub.contract_id is not None:
            freed_from[stub.contract_id] = {}
        freed = self._recomputer.recompute(set(), set(), freed_from)
        delta = self._recomputer.apply_row(change.table, change.key, new)
        merged = Merge()
        merged.add(freed)
        merged.add(delta)
        out = merged.delta()
        forced = LineUpdate(item, None, st.lines.get(item), released=True,
                            reopened=was_final)  # fmt: skip
        lines = sorted((*(u for u in out.lines if u.key != item), forced), key=line_key)
        if item[0] == MS and not any(s.milestone_id == item[1] for s in out.schedule):
            schedule = (*out.schedule, *self._schedule_forced(item[1]))
        else:
            schedule = out.schedule
        return Delta(lines=tuple(lines), schedule=tuple(schedule))

    def _schedule_forced(self, milestone_id: str) -> list[ScheduleUpdate]:
        """A released milestone's schedule line, emitted even when the flow held none."""
        new = self._st.schedule.get(milestone_id)
        return [ScheduleUpdate(milestone_id, None, new)] if new is not None else []
