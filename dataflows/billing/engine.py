"""The incremental billing engine: one change in, the lines whose target changed out.

:class:`BillingEngine` keeps the current source rows, a few reverse indexes, every line's
pre-allocation outcome and its current target (:class:`EngineState`). For one
:class:`~billsync.change.Change` it re-classifies exactly the items that can depend on
the changed row, then re-allocates the contracts whose candidates (or allocation columns)
changed, incrementally; only lines whose final target differs from before are emitted. The
work is split by concern, each module over the one state:

================  ==========================================================================
``index.py``      the rows' reverse indexes and the rules' Context over the rows (``Rows``)
``fanout.py``     which items and contracts a changed row touches (its module doc's table)
``recompute.py``  store a row, re-classify its dependents, join/leave allocation groups
``books.py``      per-contract allocation books (:mod:`~dataflows.billing.allocation`)
``closes.py``     closes and reopens of periods, changes of final items (SPEC 2b)
``output.py``     the emitted ``Delta``: changed lines, schedule, merging, ``current()``
================  ==========================================================================

The state is plain data (dicts and sets of frozen rows and targets) so Bytewax recovery can
pickle it; it remembers the mappings and their fingerprint, and :meth:`with_mappings`
re-evaluates everything when finance changed a file, or when the snapshot's targets were
computed by other rules (:data:`~dataflows.billing.rules.RULES_VERSION`). Applying a change
twice, or a stale suffix of changes again, converges: the state is a function of the latest
row per key. :class:`EngineState` stays defined in this module: recovery snapshots name its
class by this module's path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from billsync.change import Change
from billsync.model import ROW_TYPES, Row
from dataflows.billing.allocation import Book
from dataflows.billing.books import Books
from dataflows.billing.closes import Closes
from dataflows.billing.finals import Finals, FinalSegment
from dataflows.billing.index import MS, TS, Index, Rows
from dataflows.billing.mappings import Mappings
from dataflows.billing.output import Merge, current
from dataflows.billing.recompute import Recomputer
from dataflows.billing.rules import RULES_VERSION, Candidate
from dataflows.billing.target import Delta, LineKey, LineTarget, ScheduleLine

Position = int | tuple[int, int, int]  # SourcePosition.order()


@dataclass
class EngineState:
    """Everything the engine knows; plain picklable data (Bytewax snapshots it)."""

    mappings: Mappings
    rows: dict[str, dict[str, Row]] = field(default_factory=lambda: {t: {} for t in ROW_TYPES})
    # reverse indexes: referenced key -> keys of the referencing rows (index.py)
    ts_by_project: Index = field(default_factory=dict)
    ts_by_employee: Index = field(default_factory=dict)
    ms_by_project: Index = field(default_factory=dict)
    projects_by_contract: Index = field(default_factory=dict)
    contracts_by_account: Index = field(default_factory=dict)
    rates_by_contract: Index = field(default_factory=dict)
    pending_by_contract: Index = field(default_factory=dict)  # pending amendments only
    # derived state
    candidates: dict[LineKey, Candidate] = field(default_factory=dict)
    members: dict[str, dict[str, set[LineKey]]] = field(default_factory=dict)  # contract/month
    lines: dict[LineKey, LineTarget] = field(default_factory=dict)
    schedule: dict[str, ScheduleLine] = field(default_factory=dict)
    # incremental allocation per contract with candidates (see allocation.Book, books.py)
    books: dict[str, Book] = field(default_factory=dict)
    # closed periods (SPEC 2b) and what is kept of final items (dataflows/billing/finals.py)
    closed: set[str] = field(default_factory=set)
    finals: Finals = field(default_factory=Finals)
    # per table and key, the source position of the newest change applied (SPEC 4: an older
    # change changes nothing); a deleted key keeps its delete's position
    positions: dict[str, dict[str, Position]] = field(default_factory=dict)
    # the rules.RULES_VERSION the targets were computed with (absent in older snapshots)
    rules_version: int = RULES_VERSION
    # which of how many shards this state evaluates (shards.py); (0, 1): all of it
    shard: int = 0
    shards: int = 1


class BillingEngine:
    """Incremental SPEC 2 over one :class:`EngineState`; its parts share that state."""

    def __init__(
        self,
        mappings: Mappings,
        state: EngineState | None = None,
        *,
        shard: tuple[int, int] = (0, 1),
    ) -> None:
        if state is None:
            if not 0 <= shard[0] < shard[1]:
                raise ValueError(f"shard {shard[0]} of {shard[1]}: not a shard")
            state = EngineState(mappings=mappings, shard=shard[0], shards=shard[1])
        self.state = st = state
        if "shards" not in vars(st):  # from before shards: the whole state
            st.shard, st.shards = 0, 1
        self._rows = Rows(st)  # the rules' Context
        self._books = Books(st, self._rows)
        self._recomputer = Recomputer(st, self._rows, self._books)
        if "books" not in vars(st):
            # a snapshot of an engine without allocation books (and with candidates whose
            # target is not the line billed in full): re-derive both from the rows; the
            # targets are a function of the rows, so this emits nothing
            st.books = {}
            self.reevaluate_all()
        if "finals" not in vars(st):  # a snapshot from before closed periods
            st.closed = set()
            st.finals = Finals()
        if "positions" not in vars(st):  # from before stale changes were refused
            st.positions = {}
        # an index no rule reads since 2026-12-01 (rule 8 reads Rows' derived index of odd
        # statuses): dropped from snapshots of earlier versions
        vars(st).pop("amendments_by_contract", None)
        self._closes = Closes(st, self._rows, self._books, self._recomputer)  # reads st.closed

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
        return self._closes.latest

    @property
    def shard(self) -> tuple[int, int]:
        """(this shard, of how many): the items this engine evaluates (``shards.py``)."""
        return self.state.shard, self.state.shards

    def row(self, table: str, key: str) -> Row | None:
        return self.state.rows.get(table, {}).get(key)

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
            delta = self._closes.period(change.key, new)
        else:
            stub = None
            if change.table in ("timesheets", "milestones"):
                item = (TS if change.table == "timesheets" else MS, change.key)
                stub = self.state.finals.find(item)
            if stub is not None:
                if isinstance(order, int) and order <= stub.lsn:
                    return Delta(notes=("stale change of a final item: ignored",))
                delta = self._closes.apply_to_final(change, item, stub, new)
                if self.state.finals.find(item) is not None:
                    return delta  # still final: what is kept of it is its stub
            else:
                delta = self._recomputer.apply_row(change.table, change.key, new)
        if order is not None:
            self.state.positions.setdefault(change.table, {})[change.key] = order
        return delta

    def apply_unit(self, changes: Sequence[Change]) -> list[Delta]:
        """Apply the changes of one source transaction, in its order (SPEC 4: a transaction
        is applied whole): ONE merged delta (per item the first ``old`` and the last
        ``new``), so nothing downstream sees the state between two of its changes. A
        transaction that closes or reopens periods (the ERP's) keeps one delta per change:
        each close or reopen is applied at its own point."""
        deltas = [self.apply(c) for c in changes]
        if len(deltas) <= 1 or any(d.period is not None for d in deltas):
            return deltas
        merged = Merge()
        for d in deltas:
            merged.add(d)
        return [merged.delta()]

    # --- shards (shards.py) ---------------------------------------------------------------
    def own_segments(self, since: int) -> list[FinalSegment]:
        """The final segments this engine's closes made from segment number ``since`` on
        (``finals.next_seq`` before the unit): what the other shards must import."""
        return [seg for seg in self.state.finals.segments if seg.seq >= since]

    def import_finals(self, segments: Sequence[FinalSegment]) -> None:
        """Another shard's closes made these items final: keep their stubs (so that any
        shard can tell a final item and a stale change of it) and drop what this shard kept
        of them as open rows. Emits nothing: this shard evaluated none of them."""
        st = self.state
        for seg in segments:
            stubs = list(seg)
            for stub in stubs:
                table = "timesheets" if stub.key[0] == TS else "milestones"
                if stub.key in st.lines or stub.key in st.candidates:
                    raise AssertionError(f"{stub.key}: final in another shard, open here")
                row = st.rows[table].pop(stub.key[1], None)
                st.positions.get(table, {}).pop(stub.key[1], None)
                self._rows.reindex(table, stub.key[1], row, None)
            st.finals.add(seg.period, stubs)

    def with_mappings(self, mappings: Mappings) -> Delta:
        """Adopt new reference mappings (changed at start), or the current rules, and
        re-evaluate every item."""
        self.state.mappings = mappings
        self.state.rules_version = RULES_VERSION
        return self.reevaluate_all()

    def current(self) -> Delta:
        """The current target of every open line and milestone, as updates from nothing (a
        resumed step's resync: ``sinks/erp/replay.py``)."""
        return current(self.state.lines, self.state.schedule)

    def reevaluate_all(self) -> Delta:
        """Re-classify and re-allocate everything; emits only what differs."""
        items = {(TS, k) for k in self.state.rows["timesheets"]}
        items |= {(MS, k) for k in self.state.rows["milestones"]}
        items |= set(self.state.lines) | {(MS, k) for k in self.state.schedule}
        return self._recomputer.recompute(items, set(self.state.members))
