"""The incremental billing engine: one change in, the lines whose target changed out.

:class:`BillingEngine` keeps the current source rows, a few reverse indexes, every line's
pre-allocation outcome and its current target. For one :class:`~billsync.change.Change`
it re-classifies exactly the items that can depend on the changed row:

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

Allocation is then updated per contract whose candidates (or allocation columns) changed,
incrementally (see :class:`~dataflows.billing.allocation.Prefix` and
:class:`~dataflows.billing.allocation.Book`): each retainer month and each cap period (a
month, or the whole contract) keeps its members in order with what each took and the running
total; a change recomputes from its order position on and stops as soon as the running total
after an old member is what it was. A member whose retainer coverage changed gets a new
billable amount, which is a change in its cap group. A contract with neither cap nor retainer
keeps no group: its candidates are billed in full, independently. A cap raised or lowered
re-runs the contract's cap groups; any other change of the allocation columns rebuilds the
contract's book. Only lines whose final target differs from before are emitted.

The state is plain data (dicts and sets of frozen rows and targets) so Bytewax recovery can
pickle it; it remembers the mappings and their fingerprint, and :meth:`with_mappings`
re-evaluates everything when finance changed a file, or when the snapshot's targets were
computed by other rules (:data:`~dataflows.billing.rules.RULES_VERSION`). Applying a change
twice, or a stale suffix of changes again, converges: the state is a function of the latest
row per key.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from billsync.change import Change
from billsync.model import (
    ROW_TYPES,
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
from dataflows.billing.allocation import (
    WHOLE_CONTRACT,
    Book,
    Config,
    Entry,
    Prefix,
    Removal,
    billable_of,
    config_of,
    line_of,
    retained,
)
from dataflows.billing.finals import Finals, FinalStub
from dataflows.billing.mappings import Mappings
from dataflows.billing.money import ZERO
from dataflows.billing.periods import CLOSE, REOPEN, becomes_final, is_closed, own_digest
from dataflows.billing.rules import (
    RULES_VERSION,
    Candidate,
    Outcome,
    classify_milestone,
    classify_timesheet,
    contract_unexpected,
    schedule_line,
)
from dataflows.billing.target import (
    Delta,
    LineKey,
    LineTarget,
    LineUpdate,
    PeriodEvent,
    ScheduleLine,
    ScheduleUpdate,
    SourceType,
)

TS = SourceType.TIMESHEET.value
MS = SourceType.MILESTONE.value
Index = dict[str, set[str]]
Position = int | tuple[int, int, int]  # SourcePosition.order()
Touch = dict[LineKey, tuple[Candidate | None, Candidate | None]]  # item -> (old, new) candidate
_NOTHING = Delta()


@dataclass
class EngineState:
    """Everything the engine knows; plain picklable data (Bytewax snapshots it)."""

    mappings: Mappings
    rows: dict[str, dict[str, Row]] = field(default_factory=lambda: {t: {} for t in ROW_TYPES})
    # reverse indexes: referenced key -> keys of the referencing rows
    ts_by_project: Index = field(default_factory=dict)
    ts_by_employee: Index = field(default_factory=dict)
    ms_by_project: Index = field(default_factory=dict)
    projects_by_contract: Index = field(default_factory=dict)
    contracts_by_account: Index = field(default_factory=dict)
    rates_by_contract: Index = field(default_factory=dict)
    amendments_by_contract: Index = field(default_factory=dict)
    pending_by_contract: Index = field(default_factory=dict)  # pending amendments only
    # derived state
    candidates: dict[LineKey, Candidate] = field(default_factory=dict)
    members: dict[str, dict[str, set[LineKey]]] = field(default_factory=dict)  # contract/month
    lines: dict[LineKey, LineTarget] = field(default_factory=dict)
    schedule: dict[str, ScheduleLine] = field(default_factory=dict)
    # incremental allocation per contract with candidates (see allocation.Book)
    books: dict[str, Book] = field(default_factory=dict)
    # closed periods (SPEC 2b) and what is kept of final items (dataflows/billing/finals.py)
    closed: set[str] = field(default_factory=set)
    finals: Finals = field(default_factory=Finals)
    # per table and key, the source position of the newest change applied (SPEC 4: an older
    # change changes nothing); a deleted key keeps its delete's position
    positions: dict[str, dict[str, Position]] = field(default_factory=dict)
    # the rules.RULES_VERSION the targets were computed with (absent in older snapshots)
    rules_version: int = RULES_VERSION


# table -> (index attribute, foreign-key attribute of the row) for each reverse index
_INDEXES: dict[str, tuple[tuple[str, str], ...]] = {
    "timesheets": (("ts_by_project", "project_id"), ("ts_by_employee", "employee_id")),
    "milestones": (("ms_by_project", "project_id"),),
    "projects": (("projects_by_contract", "contract_id"),),
    "contracts": (("contracts_by_account", "account_id"),),
    "contract_rates": (("rates_by_contract", "contract_id"),),
    "contract_amendments": (("amendments_by_contract", "contract_id"),),
}


# the columns of referenced rows that classification or the schedule reads
_READ: dict[str, tuple[str, ...]] = {
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


def _milestone_id(update: ScheduleUpdate) -> str:
    return update.milestone_id


def _line_key(update: LineUpdate) -> LineKey:
    return update.key


def _only_cap_moved(old: Config, new: Config) -> bool:
    """Only the cap amount differs (retainer, allowance and cap period as before)."""
    return old[:2] == new[:2] and old[3] == new[3] and old[2] is not None and new[2] is not None


def _same(old: Row | None, new: Row | None, columns: tuple[str, ...]) -> bool:
    """Both rows exist and agree on ``columns``."""
    if old is None or new is None:
        return False
    return all(getattr(old, c) == getattr(new, c) for c in columns)


def _link(index: Index, ref: str | None, key: str) -> None:
    if ref is not None:
        index.setdefault(ref, set()).add(key)


def _unlink(index: Index, ref: str | None, key: str) -> None:
    if ref is not None and ref in index:
        index[ref].discard(key)
        if not index[ref]:
            del index[ref]


class BillingEngine:
    """Incremental SPEC 2. Also the rules' :class:`~dataflows.billing.rules.Context`."""

    def __init__(self, mappings: Mappings, state: EngineState | None = None) -> None:
        self.state = state if state is not None else EngineState(mappings=mappings)
        if "books" not in vars(self.state):
            # a snapshot of an engine without allocation books (and with candidates whose
            # target is not the line billed in full): re-derive both from the rows; the
            # targets are a function of the rows, so this emits nothing
            self.state.books = {}
            self.reevaluate_all()
        if "finals" not in vars(self.state):  # a snapshot from before closed periods
            self.state.closed = set()
            self.state.finals = Finals()
        if "positions" not in vars(self.state):  # from before stale changes were refused
            self.state.positions = {}

    # --- persistence --------------------------------------------------------------------
    def snapshot(self) -> EngineState:
        """The state to pickle (Bytewax recovery). Shared, not copied: pickle it at once."""
        return self.state

    @classmethod
    def restore(cls, state: EngineState) -> BillingEngine:
        return cls(state.mappings, state)

    # --- views --------------------------------------------------------------------------
    @property
    def mappings(self) -> Mappings:
        return self.state.mappings

    @property
    def fingerprint(self) -> str:
        """The mappings' fingerprint, or a stale marker when the targets were computed by
        other rules (a snapshot of an older version): the start-up check of the flow
        (``dataflows/logic.py``) then calls :meth:`with_mappings`, which re-evaluates every
        item and emits the differences."""
        if vars(self.state).get("rules_version") != RULES_VERSION:
            return f"stale: rules version {vars(self.state).get('rules_version')}"
        return self.state.mappings.fingerprint

    @property
    def lines(self) -> dict[LineKey, LineTarget]:
        return self.state.lines

    @property
    def schedule(self) -> dict[str, ScheduleLine]:
        return self.state.schedule

    @property
    def finals(self) -> Finals:
        return self.state.finals

    @property
    def closed_through(self) -> str | None:
        """The latest closed accounting period at this point of the stream."""
        return max(self.state.closed) if self.state.closed else None

    def row(self, table: str, key: str) -> Row | None:
        return self.state.rows.get(table, {}).get(key)

    # --- Context ------------------------------------------------------------------------
    def project(self, project_id: str | None) -> Project | None:
        row = self.state.rows["projects"].get(project_id) if project_id is not None else None
        return row if isinstance(row, Project) else None

    def employee(self, employee_id: str | None) -> Employee | None:
        row = self.state.rows["employees"].get(employee_id) if employee_id is not None else None
        return row if isinstance(row, Employee) else None

    def contract(self, contract_id: str | None) -> Contract | None:
        row = self.state.rows["contracts"].get(contract_id) if contract_id is not None else None
        return row if isinstance(row, Contract) else None

    def account(self, account_id: str | None) -> Account | None:
        row = self.state.rows["accounts"].get(account_id) if account_id is not None else None
        return row if isinstance(row, Account) else None

    def amendment_pending(self, contract_id: str) -> bool:
        return contract_id in self.state.pending_by_contract

    def amendments(self, contract_id: str) -> Iterable[ContractAmendment]:
        table = self.state.rows["contract_amendments"]
        ids = self.state.amendments_by_contract.get(contract_id, ())
        return [table[i] for i in ids]  # type: ignore[misc]  # the amendments table holds ContractAmendment rows only

    def rates(self, contract_id: str) -> Iterable[ContractRate]:
        table = self.state.rows["contract_rates"]
        ids = self.state.rates_by_contract.get(contract_id, ())
        return [table[i] for i in ids]  # type: ignore[misc]  # the rates table holds ContractRate rows only

    # --- changes ------------------------------------------------------------------------
    def apply(self, change: Change) -> Delta:
        """Apply one change (``r`` counts as insert; a delete carries only the key)."""
        if change.table not in ROW_TYPES:
            return Delta(notes=(f"table {change.table} is not a billing source: ignored",))
        new = None if change.is_delete else change.after
        if new is not None and new.key != change.key:
            # a primary-key change arrives from Debezium as delete + create; be safe anyway
            return Delta(notes=(f"key {change.key} differs from row key {new.key}: ignored",))
        order = change.position.order()
        held = self.state.positions.get(change.table, {}).get(change.key)
        if order is not None and held is not None and order <= held:  # type: ignore[operator]  # one source: same kind of key
            return Delta(notes=("stale change: not newer than what the flow holds",))
        if change.table == "accounting_periods":
            delta = self._period(change.key, new)
        else:
            stub = None
            if change.table in ("timesheets", "milestones"):
                item = (TS if change.table == "timesheets" else MS, change.key)
                stub = self.state.finals.find(item)
            if stub is not None:
                if isinstance(order, int) and order <= stub.lsn:
                    return Delta(notes=("stale change of a final item: ignored",))
                delta = self._apply_to_final(change, item, stub, new)
                if self.state.finals.find(item) is not None:
                    return delta  # still final: what is kept of it is its stub
            else:
                delta = self._apply_row(change.table, change.key, new)
        if order is not None:
            self.state.positions.setdefault(change.table, {})[change.key] = order
        return delta

    def _apply_row(self, table: str, key: str, new: Row | None) -> Delta:
        rows = self.state.rows[table]
        old = rows.get(key)
        if old == new:
            return Delta(notes=("no change to the stored row: nothing to do",))
        if new is None:
            del rows[key]
        else:
            rows[key] = new
        self._reindex(table, key, old, new)
        if (
            table == "timesheets"
            and (old is None or getattr(old, "status", None) != "approved")
            and (new is None or getattr(new, "status", None) != "approved")
        ):
            return _NOTHING  # rule 1 before and after: no line state, no candidate, no group
        items, contracts = self._dependents(table, key, old, new)
        return self._recompute(items, contracts)

    # --- closed periods (SPEC 2b) -----------------------------------------------------
    def _apply_to_final(
        self, change: Change, item: LineKey, stub: FinalStub, new: Row | None
    ) -> Delta:
        """A change of a final item's own row (or of one waiting in a reopened period).

        A final item whose billing columns did not change stays final (nothing else of it
        is kept to compare). Otherwise it leaves its segment, frees what it consumed, and is
        evaluated as an open item; the update is always emitted (the ERP holds its old
        figures, the flow does not) and marked ``reopened`` when it was final.
        """
        finals = self.state.finals
        was_final = finals.is_final(stub)
        if was_final and new is not None and own_digest(new) == stub.digest:
            return Delta(notes=("final item: no billing column of its own row changed",))
        finals.release(stub)
        rebuild = {stub.contract_id} if stub.contract_id is not None else set()
        freed = self._recompute(set(), set(), rebuild)
        delta = self._apply_row(change.table, change.key, new)
        merged = _Merge()
        merged.add(freed)
        merged.add(delta)
        out = merged.delta()
        forced = LineUpdate(item, None, self.state.lines.get(item), released=True,
                            reopened=was_final)  # fmt: skip
        lines = sorted((*(u for u in out.lines if u.key != item), forced), key=_line_key)
        if item[0] == MS and not any(s.milestone_id == item[1] for s in out.schedule):
            schedule = (*out.schedule, *self._schedule_forced(item[1]))
        else:
            schedule = out.schedule
        return Delta(lines=tuple(lines), schedule=tuple(schedule))

    def _period(self, period: str, new: Row | None) -> Delta:
        """A change of an ``accounting_periods`` row: a close, a reopen, or nothing."""
        st = self.state
        if new is None:
            st.rows["accounting_periods"].pop(period, None)
        else:
            st.rows["accounting_periods"][period] = new
        if is_closed(new) and period not in st.closed:
            return self._close(period)
        if not is_closed(new) and period in st.closed:
            st.closed.discard(period)
            st.finals.limbo.add(period)  # its items wait for their rows (a re-snapshot)
            return Delta(period=PeriodEvent(REOPEN, period, self.closed_through))
        return Delta(notes=(f"accounting period {period}: no change of status",))

    def _close(self, period: str) -> Delta:
        """Close ``period``: every open item of it or before in a final state becomes final
        and leaves the open state; the allocation of its contracts is rebuilt against what
        the final items consumed. Items waiting in an earlier reopened period are final
        again (their stubs never changed)."""
        st = self.state
        st.closed.add(period)
        st.finals.limbo = {p for p in st.finals.limbo if p > period}
        stubs: list[FinalStub] = []
        rebuild: set[str] = set()
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
                self._leave(cand, key)
                rebuild.add(cand.contract_id)
            self._reindex(table, key[1], row, None)
            if key[0] == MS:
                st.schedule.pop(key[1], None)
        if stubs:
            st.finals.add(period, stubs)
        delta = self._recompute(set(), set(), rebuild)
        return Delta(
            lines=delta.lines,
            schedule=delta.schedule,
            period=PeriodEvent(CLOSE, period, self.closed_through),
        )

    def _schedule_forced(self, milestone_id: str) -> list[ScheduleUpdate]:
        """A released milestone's schedule line, emitted even when the flow held none."""
        new = self.state.schedule.get(milestone_id)
        return [ScheduleUpdate(milestone_id, None, new)] if new is not None else []

    def _left(self, contract_id: str, group: str, raw: Decimal, *, hours: bool) -> Decimal:
        """What final items left of a retainer month's allowance (``hours``) or of a cap
        period's cap."""
        used_hours, used_billed = self.state.finals.used(
            contract_id, None if group == WHOLE_CONTRACT else group
        )
        return raw - (used_hours if hours else used_billed)

    def apply_unit(self, changes: Sequence[Change]) -> list[Delta]:
        """Apply the changes of one source transaction, in its order (SPEC 4: a transaction
        is applied whole): ONE merged delta (per item the first ``old`` and the last
        ``new``), so nothing downstream sees the state between two of its changes. A
        transaction that closes or reopens periods (the ERP's) keeps one delta per change:
        each close or reopen is applied at its own point."""
        deltas = [self.apply(c) for c in changes]
        if len(deltas) <= 1 or any(d.period is not None for d in deltas):
            return deltas
        merged = _Merge()
        for d in deltas:
            merged.add(d)
        return [merged.delta()]

    def with_mappings(self, mappings: Mappings) -> Delta:
        """Adopt new reference mappings (changed at start), or the current rules, and
        re-evaluate every item."""
        self.state.mappings = mappings
        self.state.rules_version = RULES_VERSION
        return self.reevaluate_all()

    def current(self) -> Delta:
        """The current target of every open line and milestone, as updates from nothing (a
        resumed step's resync: ``sinks/erp/replay.py``)."""
        return Delta(
            lines=tuple(LineUpdate(k, None, t) for k, t in sorted(self.state.lines.items())),
            schedule=tuple(
                ScheduleUpdate(m, None, s) for m, s in sorted(self.state.schedule.items())
            ),
        )

    def reevaluate_all(self) -> Delta:
        """Re-classify and re-allocate everything; emits only what differs."""
        items = {(TS, k) for k in self.state.rows["timesheets"]}
        items |= {(MS, k) for k in self.state.rows["milestones"]}
        items |= set(self.state.lines) | {(MS, k) for k in self.state.schedule}
        return self._recompute(items, set(self.state.members))

    # --- internals ----------------------------------------------------------------------
    def _reindex(self, table: str, key: str, old: Row | None, new: Row | None) -> None:
        for index_name, attr in _INDEXES.get(table, ()):
            index: Index = getattr(self.state, index_name)
            before = getattr(old, attr) if old is not None else None
            after = getattr(new, attr) if new is not None else None
            if before != after:
                _unlink(index, before, key)
                _link(index, after, key)
        if table == "contract_amendments":
            pending = self.state.pending_by_contract
            if isinstance(old, ContractAmendment) and old.status == "pending":
                _unlink(pending, old.contract_id, key)
            if isinstance(new, ContractAmendment) and new.status == "pending":
                _link(pending, new.contract_id, key)

    def _items_of_contract(self, contract_id: str | None, out: set[LineKey]) -> None:
        if contract_id is None:
            return
        for project_id in self.state.projects_by_contract.get(contract_id, ()):
            self._items_of_project(project_id, out)

    def _items_of_project(self, project_id: str | None, out: set[LineKey]) -> None:
        if project_id is None:
            return
        out.update((TS, k) for k in self.state.ts_by_project.get(project_id, ()))
        out.update((MS, k) for k in self.state.ms_by_project.get(project_id, ()))

    def _dependents(
        self, table: str, key: str, old: Row | None, new: Row | None
    ) -> tuple[set[LineKey], set[str]]:
        """Items to re-classify, and contracts whose groups must all be re-allocated.

        A change of a referenced row that touches none of the columns the rules read (see
        :data:`_READ`) re-classifies nothing; a rate change re-classifies only the
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
            if not _same(old, new, _READ[table]) or _unexpected_moved(old, new):
                self._items_of_contract(key, items)
        elif not _same(old, new, _READ.get(table, ())):
            if table == "employees":
                items.update((TS, k) for k in self.state.ts_by_employee.get(key, ()))
            elif table == "projects":
                self._items_of_project(key, items)
            elif table == "accounts":
                for contract_id in self.state.contracts_by_account.get(key, ()):
                    self._items_of_contract(contract_id, items)
            elif table == "contract_amendments":
                for row in (old, new):
                    assert row is None or isinstance(row, ContractAmendment)
                    if row is not None and row.status not in _QUIET_AMENDMENT:
                        self._items_of_contract(row.contract_id, items)
            elif table == "contract_rates":
                self._items_of_rate(old, new, items)
        return items, contracts

    def _items_of_rate(self, old: Row | None, new: Row | None, out: set[LineKey]) -> None:
        categories: set[str | None] = set()
        scope: set[LineKey] = set()
        for row in (old, new):
            assert row is None or isinstance(row, ContractRate)
            if row is not None:
                categories.add(row.labor_category)
                self._items_of_contract(row.contract_id, scope)
        for item in scope:
            if item[0] != TS:
                continue  # milestones use no rate
            ts = self.state.rows["timesheets"].get(item[1])
            employee = self.employee(ts.employee_id) if isinstance(ts, Timesheet) else None
            if employee is not None and employee.labor_category in categories:
                out.add(item)

    def _classify(self, item: LineKey) -> Outcome:
        source_type, key = item
        if source_type == TS:
            ts = self.state.rows["timesheets"].get(key)
            assert ts is None or isinstance(ts, Timesheet)
            return classify_timesheet(ts, self, self.state.mappings)
        ms = self.state.rows["milestones"].get(key)
        assert ms is None or isinstance(ms, Milestone)
        return classify_milestone(ms, self, self.state.mappings)

    def _recompute(
        self, items: set[LineKey], contracts: set[str], rebuild: set[str] | None = None
    ) -> Delta:
        """Re-classify ``items``, re-allocate ``contracts`` incrementally and ``rebuild``
        (contracts whose final consumption changed) from scratch."""
        st = self.state
        changed: dict[LineKey, LineTarget | None] = {}  # item -> target before this change
        touched: dict[str, Touch] = {c: {} for c in contracts}  # contract -> its changes
        for c in rebuild or ():
            touched.setdefault(c, {})
        sched: list[ScheduleUpdate] = []
        for item in items:  # any order: each item is classified alone
            outcome = self._classify(item)
            before = st.candidates.get(item)
            moved = before != outcome
            if before is not None and moved:
                del st.candidates[item]
                self._leave(before, item)
                touched.setdefault(before.contract_id, {})[item] = (before, None)
            if isinstance(outcome, Candidate):
                if moved:
                    st.candidates[item] = outcome
                    st.members.setdefault(outcome.contract_id, {}).setdefault(
                        outcome.month, set()
                    ).add(item)
                    touch = touched.setdefault(outcome.contract_id, {})
                    touch[item] = (touch[item][0] if item in touch else None, outcome)
            else:
                self._set_line(item, outcome, changed)
            if item[0] == MS:
                sched.extend(self._schedule(item[1]))
        for contract_id, touch in touched.items():
            if rebuild and contract_id in rebuild:
                contract = self.contract(contract_id)
                if contract is None:
                    st.books.pop(contract_id, None)
                else:
                    self._rebuild(contract_id, Book(config_of(contract)), touch, changed)
            else:
                self._allocate(contract_id, touch, changed)
        if not changed and not sched:
            return _NOTHING
        lines = st.lines
        updates = tuple(
            LineUpdate(k, old, lines.get(k))
            for k, old in (sorted(changed.items()) if len(changed) > 1 else changed.items())
            if old != lines.get(k)
        )
        if len(sched) > 1:
            sched.sort(key=_milestone_id)
        return Delta(lines=updates, schedule=tuple(sched))

    def _leave(self, cand: Candidate, item: LineKey) -> None:
        months = self.state.members.get(cand.contract_id)
        if months is None:
            return
        group = months.get(cand.month)
        if group is not None:
            group.discard(item)
            if not group:
                del months[cand.month]
        if not months:
            del self.state.members[cand.contract_id]

    def _allocate(
        self, contract_id: str, touch: Touch, changed: dict[LineKey, LineTarget | None]
    ) -> None:
        """Retainer and cap for the changed candidates of one contract, incrementally.

        Each retainer month and cap period is a :class:`~dataflows.billing.allocation.Prefix`:
        a change recomputes that group from the changed order position on, until the running
        total is what it was. A member whose coverage changed gets a new billable amount,
        which is a change in its cap group. A contract whose allocation columns changed (or
        that has no book yet) is rebuilt from all its candidates.
        """
        st = self.state
        contract = self.contract(contract_id)
        if contract is None:
            st.books.pop(contract_id, None)  # every candidate of it has left (rule 6)
            return
        config = config_of(contract)
        book = st.books.get(contract_id)
        billed: dict[LineKey, Decimal] = {}
        if book is not None and book.config != config and _only_cap_moved(book.config, config):
            book.config = config  # the same groups under a new cap: re-run them from the start
            assert config[2] is not None
            for key, group in book.caps.items():
                billed.update(group.relimit(self._left(contract_id, key, config[2], hours=False)))
        elif book is None or book.config != config:
            self._rebuild(contract_id, Book(config), touch, changed)
            return
        retainer, _allowance, cap, _monthly = config
        if not retainer and cap is None:  # members are independent: each is billed in full
            for item, (_old, new) in touch.items():
                if new is not None:
                    self._set_line(item, new.target, changed)
            return
        covered: dict[LineKey, Decimal] = {}
        if retainer:
            allowance = book.config[1]
            self._run(
                book.retainer,
                lambda g: self._left(contract_id, g, allowance, hours=True),
                self._retainer_moves(touch),
                covered,
            )
        billable: dict[LineKey, Decimal] = {}
        if cap is not None:
            moves = self._cap_moves(book, touch, covered, billable)
            self._run(
                book.caps, lambda g: self._left(contract_id, g, cap, hours=False), moves, billed
            )
        fresh = [item for item, (_old, new) in touch.items() if new is not None]
        emit = set(fresh)
        emit.update(covered)
        emit.update(billed)
        candidates = st.candidates
        for item in emit:
            cand = candidates.get(item)
            if cand is None or cand.contract_id != contract_id:
                continue  # re-capped, then left the contract in this same change
            if item in covered:
                cov = covered[item]
            elif retainer and retained(cand):
                cov = book.retainer[cand.month].take_of(cand.order, item)
            else:
                cov = ZERO
            amount = billable[item] if item in billable else billable_of(cand, cov)
            if item in billed:
                bill = billed[item]
            elif cap is not None:
                bill = book.caps[book.period(cand)].take_of(cand.order, item)
            else:
                bill = amount
            self._emit(item, cand, cov, amount, bill, item in touch, changed)

    @staticmethod
    def _retainer_moves(touch: Touch) -> dict[str, tuple[list[Removal], list[Entry]]]:
        moves: dict[str, tuple[list[Removal], list[Entry]]] = {}
        for item, (old, new) in touch.items():
            if old is not None and retained(old):
                moves.setdefault(old.month, ([], []))[0].append((old.order, item))
            if new is not None and retained(new):
                assert new.hours is not None
                moves.setdefault(new.month, ([], []))[1].append((new.order, item, new.hours))
        return moves

    def _cap_moves(
        self,
        book: Book,
        touch: Touch,
        covered: dict[LineKey, Decimal],
        billable: dict[LineKey, Decimal],
    ) -> dict[str, tuple[list[Removal], list[Entry]]]:
        """Cap-group changes: touched candidates, and members whose coverage changed."""
        moves: dict[str, tuple[list[Removal], list[Entry]]] = {}
        for item, (old, new) in touch.items():
            if old is not None:
                moves.setdefault(book.period(old), ([], []))[0].append((old.order, item))
            if new is not None:
                amount = billable[item] = billable_of(new, covered.get(item, ZERO))
                moves.setdefault(book.period(new), ([], []))[1].append((new.order, item, amount))
        for item, cov in covered.items():
            if item in touch:
                continue
            cand = self.state.candidates[item]
            amount = billable[item] = billable_of(cand, cov)
            period = book.period(cand)
            if book.caps[period].x_of(cand.order, item) != amount:
                move = moves.setdefault(period, ([], []))
                move[0].append((cand.order, item))
                move[1].append((cand.order, item, amount))
        return moves

    @staticmethod
    def _run(
        groups: dict[str, Prefix],
        limit_of: Callable[[str], Decimal],
        moves: dict[str, tuple[list[Removal], list[Entry]]],
        out: dict[LineKey, Decimal],
    ) -> None:
        for key, (removes, inserts) in moves.items():
            group = groups.get(key)
            if group is None:
                group = groups[key] = Prefix(limit_of(key))
            out.update(group.update(removes, inserts))
            if not len(group):
                del groups[key]

    def _rebuild(
        self, contract_id: str, book: Book, touch: Touch, changed: dict[LineKey, LineTarget | None]
    ) -> None:
        """Allocate every candidate of a contract from scratch into a new book."""
        st = self.state
        months = st.members.get(contract_id)
        if not months:
            st.books.pop(contract_id, None)
            return
        st.books[contract_id] = book
        retainer, allowance, cap, _monthly = book.config
        candidates = [(k, st.candidates[k]) for group in months.values() for k in group]
        covered: dict[LineKey, Decimal] = {}
        if retainer:
            by_month: dict[str, list[Entry]] = {}
            for item, cand in candidates:
                if retained(cand):
                    assert cand.hours is not None
                    by_month.setdefault(cand.month, []).append((cand.order, item, cand.hours))
            for month, entries in by_month.items():
                group = book.retainer[month] = Prefix(
                    self._left(contract_id, month, allowance, hours=True)
                )
                covered.update(group.fill(entries))
        billable = {item: billable_of(cand, covered.get(item, ZERO)) for item, cand in candidates}
        billed: dict[LineKey, Decimal] = billable
        if cap is not None:
            by_period: dict[str, list[Entry]] = {}
            for item, cand in candidates:
                by_period.setdefault(book.period(cand), []).append(
                    (cand.order, item, billable[item])
                )
            billed = {}
            for period, entries in by_period.items():
                group = book.caps[period] = Prefix(
                    self._left(contract_id, period, cap, hours=False)
                )
                billed.update(group.fill(entries))
        for item, cand in candidates:
            amount = billable[item]
            self._emit(
                item, cand, covered.get(item, ZERO), amount, billed[item], item in touch, changed
            )

    def _emit(
        self,
        item: LineKey,
        cand: Candidate,
        covered: Decimal,
        billable: Decimal,
        billed: Decimal,
        fresh: bool,
        changed: dict[LineKey, LineTarget | None],
    ) -> None:
        """Set a candidate's target from its figures (unchanged figures of an unchanged
        candidate keep the current target: state, reason and tax follow from them)."""
        if not fresh:
            cur = self.state.lines.get(item)
            if (
                cur is not None
                and cur.billed_amount == billed
                and cur.billable_amount == billable
                and cur.held_amount == billable - billed
                and cur.covered_hours == covered
            ):
                return
        self._set_line(item, line_of(cand, covered, billable, billed), changed)

    def _set_line(
        self, item: LineKey, target: LineTarget | None, changed: dict[LineKey, LineTarget | None]
    ) -> None:
        lines = self.state.lines
        current = lines.get(item)
        if current == target:
            return
        if item not in changed:
            changed[item] = current
        if target is None:
            del lines[item]
        else:
            lines[item] = target

    def _schedule(self, milestone_id: str) -> list[ScheduleUpdate]:
        ms = self.state.rows["milestones"].get(milestone_id)
        assert ms is None or isinstance(ms, Milestone)
        new = schedule_line(ms, self)
        old = self.state.schedule.get(milestone_id)
        if new == old:
            return []
        if new is None:
            del self.state.schedule[milestone_id]
        else:
            self.state.schedule[milestone_id] = new
        return [ScheduleUpdate(milestone_id, old, new)]


class _Merge:
    """Folds several deltas into one: per item the first ``old`` and the last ``new``; an
    item released or reopened by any of them stays so (the writer needs to know)."""

    def __init__(self) -> None:
        self.lines: dict[LineKey, tuple[LineTarget | None, LineTarget | None]] = {}
        self.flags: dict[LineKey, tuple[bool, bool]] = {}
        self.schedule: dict[str, tuple[ScheduleLine | None, ScheduleLine | None]] = {}

    def add(self, delta: Delta) -> None:
        for u in delta.lines:
            first = self.lines[u.key][0] if u.key in self.lines else u.old
            self.lines[u.key] = (first, u.new)
            if u.released or u.reopened:
                released, reopened = self.flags.get(u.key, (False, False))
                self.flags[u.key] = (released or u.released, reopened or u.reopened)
        for s in delta.schedule:
            sfirst = self.schedule[s.milestone_id][0] if s.milestone_id in self.schedule else s.old
            self.schedule[s.milestone_id] = (sfirst, s.new)

    def delta(self) -> Delta:
        lines = []
        for k, (o, n) in sorted(self.lines.items()):
            released, reopened = self.flags.get(k, (False, False))
            if o != n or released or reopened:
                lines.append(LineUpdate(k, o, n, released=released, reopened=reopened))
        return Delta(
            lines=tuple(lines),
            schedule=tuple(
                ScheduleUpdate(k, o, n) for k, (o, n) in sorted(self.schedule.items()) if o != n
            ),
        )
