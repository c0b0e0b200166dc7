"""The ledger is a function of the emission sequence; a restart posts nothing new (SPEC 4).

(a) The ledger, line states and outbox of a sequence of emissions are the same, entry for
entry, whether it is applied in one batch or split anywhere (each step is posted in turn).
(b) A run killed after the ERP applied units 1..k and restarted from a snapshot at unit j <= k
(the billing step replays units j+1..) ends, entry for entry, as the uninterrupted run:
the replayed prefix is coalesced and posts nothing. Closes, reopens and corrections after a
close are in the stories; so is a second crash while the prefix is being gathered.
(c) A replay whose two partitions interleave differently nets to the new targets and posts
only the difference, once.
On the writer before this change, (a) and (b) fail: intermediate targets of a batch posted
nothing (a), and every replayed target was diffed against the ERP (b: -T2+T1, then +T2-T1).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.util import LRUCache
from structlog.testing import capture_logs

from dataflows.billing.target import LineTarget, LineUpdate
from dataflows.emissions import Emission, Progress
from dataflows.logic import RESYNC
from sinks.erp.replay import GateState
from sinks.erp.sink import _ErpPartition
from sinks.erp.writer import ErpWriter

from .replay_story import PSA, Unit, cut, erp_state, items_of, line, story

NOW = datetime(2026, 4, 1, tzinfo=UTC)

moves = st.one_of(
    st.tuples(
        st.just("line"),
        st.integers(0, 2),
        st.integers(-1, 5),
        st.integers(0, 2),
        st.integers(0, 1),
    ),
    st.tuples(st.just("period"), st.booleans()),
)
stories = st.lists(st.lists(moves, min_size=1, max_size=3), min_size=1, max_size=14)

# a hand-written story: billed, closed (final), corrected after the close, reopened, closed
# again, changed in another customer, held and released
STORY = [
    [("line", 0, 0, 0, 0), ("line", 1, 2, 0, 0)],  # line 1 billed, line 2 held (2026-01)
    [("line", 0, 1, 0, 0)],  # line 1: 960 -> 480
    [("period", False)],  # close 2026-01: line 1 final, line 2 carried forward
    [("line", 0, 0, 0, 0)],  # line 1 corrected after the close (reopened)
    [("line", 2, 3, 1, 0)],  # line 3 partially held in 2026-02
    [("period", False)],  # close 2026-02: lines 1 and 3 final
    [("period", True)],  # reopen 2026-02: both open again
    [("line", 1, 0, 0, 1), ("line", 2, -1, 0, 0)],  # line 2 billed; line 3 gone
    [("line", 0, 2, 0, 0)],  # line 1 held
    [("line", 0, 0, 0, 1)],  # line 1 released, billed to another customer
    [("period", False)],  # close 2026-02 again: lines 1 and 2 final
    [("line", 1, 4, 2, 0)],  # line 2 corrected after the close: non-billable in 2026-03
]


# one statement cache for every example's fresh ERP (compiling dominates a fresh engine's time)
_STATEMENTS: LRUCache[object, object] = LRUCache(2000)


def erp() -> Engine:
    return create_engine("sqlite://").execution_options(compiled_cache=_STATEMENTS)


def partition(engine: Engine, state: GateState | None = None) -> _ErpPartition:
    return _ErpPartition(engine, None, 3600.0, lambda: NOW, resume_state=state)


# --- (a) batch boundaries do not shape the ledger ------------------------------------------


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(moves=stories, cuts=st.lists(st.integers(1, 60), max_size=8), tracked=st.booleans())
@example(moves=STORY, cuts=[1, 2, 4, 9], tracked=False)
def test_the_ledger_does_not_depend_on_batch_boundaries(
    moves: list[list[tuple[object, ...]]], cuts: list[int], tracked: bool
) -> None:
    units = story(moves)
    emissions = [em for u in units for em in u.emissions]
    one, split = erp(), erp()
    try:
        for engine, batches in ((one, [emissions]), (split, cut(emissions, cuts))):
            writer = ErpWriter(engine, clock=lambda: NOW)
            writer.ensure_schema()
            for n, batch in enumerate(batches):
                writer.apply(batch, covers=((PSA, n),) if tracked else None)
        a, b = erp_state(one), erp_state(split)
        assert a["ledger"] == b["ledger"]
        assert a["lines"] == b["lines"]
        assert a["outbox"] == b["outbox"]
    finally:
        one.dispose()
        split.dispose()


def test_each_step_of_a_batch_is_posted_as_its_own_batch_would() -> None:
    engine = erp()
    writer = ErpWriter(engine, clock=lambda: NOW)
    writer.ensure_schema()
    t1, t2 = line("1", 0), line("1", 1, customer="CUST-2")
    result = writer.apply(
        [
            Emission(_update(None, t1), "p1"),
            Emission(_update(t1, t2), "p2"),  # another customer: reversal there, charge here
        ]
    )
    got = [(e.entry_type, str(e.amount), e.erp_customer_id) for e in result.entries]
    assert got == [
        ("charge", "960.00", "CUST-1"),
        ("reversal", "-960.00", "CUST-1"),
        ("charge", "480.00", "CUST-2"),
    ]
    assert [r["source_position"] for r in erp_state(engine)["ledger"]] == ["p1", "p2", "p2"]
    engine.dispose()


# --- (b) a restart posts nothing an uninterrupted run would not ----------------------------


def run(part: _ErpPartition, items: list[Emission | Progress], cuts: list[int]) -> None:
    for batch in cut(items, cuts):
        part.write_batch(list(batch))


def resumed(units: list[Unit], upto: int) -> Progress:
    """The marker of a billing step restarted from a snapshot taken after ``upto`` units."""
    return Progress(units[upto - 1].covers if upto else (), resumed=True)


def uninterrupted(units: list[Unit], cuts: list[int]) -> dict[str, list[object]]:
    engine = erp()
    try:
        run(partition(engine), [resumed(units, 0), *items_of(units)], cuts)
        return erp_state(engine)
    finally:
        engine.dispose()


def killed(
    units: list[Unit], k: int, j: int, cuts: list[int], second: tuple[int, int] | None = None
) -> dict[str, list[object]]:
    """ERP holds units 1..k; the flow restarts from its snapshot after unit j (<= k). With
    ``second`` = (s, m): the restarted flow's sink is snapshotted after unit s and killed
    after unit m, and the flow restarts again from unit s."""
    engine = erp()
    try:
        run(partition(engine), [resumed(units, 0), *items_of(units[:k])], cuts)
        part = partition(engine)  # the first sink died without close; Bytewax held nothing
        if second is None:
            run(part, [resumed(units, j), *items_of(units[j:])], cuts)
            return erp_state(engine)
        s, m = second
        run(part, [resumed(units, j), *items_of(units[j:s])], cuts)
        # as Bytewax stores and restores it
        snap = pickle.loads(pickle.dumps(part.snapshot()))  # noqa: S301  # our own bytes
        run(part, items_of(units[s:m]), cuts)
        run(partition(engine, snap), [resumed(units, s), *items_of(units[s:])], cuts)
        return erp_state(engine)
    finally:
        engine.dispose()


@st.composite
def crashes(draw: st.DrawFn) -> tuple[list[Unit], int, int, tuple[int, int] | None]:
    units = story(draw(stories))
    k = draw(st.integers(0, len(units)))
    j = draw(st.integers(0, k))
    second = None
    if draw(st.booleans()):
        s = draw(st.integers(j, len(units)))
        second = (s, draw(st.integers(s, len(units))))
    return units, k, j, second


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(crash=crashes(), cuts=st.lists(st.integers(1, 80), max_size=6))
@example(crash=(story(STORY), 10, 2, None), cuts=[])
@example(crash=(story(STORY), 12, 0, None), cuts=[3, 7])  # a rebuild from the beginning
@example(crash=(story(STORY), 9, 1, (4, 8)), cuts=[5])  # crashed again while gathering
def test_a_restart_ends_as_the_uninterrupted_run(
    crash: tuple[list[Unit], int, int, tuple[int, int] | None], cuts: list[int]
) -> None:
    units, k, j, second = crash
    expected = uninterrupted(units, cuts)
    assert killed(units, k, j, cuts, second) == expected


def test_the_replayed_prefix_posts_nothing_and_is_logged() -> None:
    units = story(STORY)
    engine = erp()
    run(partition(engine), [resumed(units, 0), *items_of(units[:10])], [])
    before = erp_state(engine)
    part = partition(engine)
    with capture_logs() as logs:
        part.write_batch([resumed(units, 2), *items_of(units[2:10])])
    assert erp_state(engine) == before  # the whole prefix: not one entry, event or row
    started, ended = (e for e in logs if e["event"] in ("replay_started", "replay_ended"))
    assert started["to_offsets"] == {PSA: 9} and started["from_offsets"] == {PSA: 1}
    assert (ended["units_coalesced"], ended["ledger_entries"], ended["lines_changed"]) == (8, 0, 0)
    assert ended["log_level"] == "info"
    engine.dispose()


# --- (c) two partitions replayed in another interleaving ----------------------------------

A, B = "psa.billing:0", "crm.billing:0"


def _update(old: LineTarget | None, new: LineTarget | None) -> LineUpdate:
    some = new if new is not None else old
    assert some is not None
    return LineUpdate(some.key, old, new)


def unit(partition_: str, offset: int, *emissions: Emission) -> Unit:
    return Unit(tuple(emissions), ((partition_, offset),))


def test_another_interleaving_posts_only_the_difference_once() -> None:
    """Original order: A0 (line 1 billed 960), B0 (line 1 -> 480), A1 (line 2 held), B1 (line 2
    billed 960). The restart (fresh: a rebuild) reads B before A: line 1 ends at 960 (A0 last)
    instead of 480, line 2 ends billed as the ERP has it. A unit of A beyond the ERP's offset
    (A2, line 3) arrives while B is still pending: it is in the coalesced batch."""
    full, half, held = line("1", 0), line("1", 1), line("2", 2)
    l2, l3 = line("2", 0), line("3", 1)
    a0 = unit(A, 0, Emission(_update(None, full), "a0"))
    b0 = unit(B, 0, Emission(_update(full, half), "b0"))
    a1 = unit(A, 1, Emission(_update(None, held), "a1"))
    b1 = unit(B, 1, Emission(_update(held, l2), "b1"))
    engine = erp()
    run(partition(engine), [Progress((), resumed=True), *items_of([a0, b0, a1, b1])], [])
    before = erp_state(engine)
    # the replay: B first; line 1 ends with A0's target (960), the others as before
    b0r = unit(B, 0, Emission(_update(None, half), "b0"))
    a0r = unit(A, 0, Emission(_update(half, full), "a0"))
    a1r = unit(A, 1, Emission(_update(None, held), "a1"))
    a2 = unit(A, 2, Emission(_update(None, l3), "a2"))
    b1r = unit(B, 1, Emission(_update(held, l2), "b1"))
    part = partition(engine)
    part.write_batch([Progress((), resumed=True), *items_of([b0r, a0r, a1r])])
    assert erp_state(engine) == before  # gathering: nothing written while B is pending
    part.write_batch(items_of([a2, b1r]))
    after = erp_state(engine)
    kept = [r for r in after["ledger"] if r in before["ledger"]]
    assert kept == before["ledger"]  # nothing applied is posted again, nothing taken back
    new = [r for r in after["ledger"] if r not in before["ledger"]]
    # line 1: +480 back to 960 (once); line 3: its charge; line 2: nothing
    assert sorted((r["source_id"], r["entry_type"], str(r["amount"])) for r in new) == [
        ("1", "adjustment", "480.00"),
        ("3", "charge", "480.00"),
    ]
    assert [(r["source_id"], str(r["billed_amount"])) for r in after["lines"]] == [
        ("1", "960.00"),
        ("2", "960.00"),
        ("3", "480.00"),
    ]
    assert after["progress"] == [(B, 1), (A, 2)]
    events = after["outbox"][len(before["outbox"]) :]
    assert [o[0] for o in events] == ["billing.transactions"] * 2  # no exception event
    engine.dispose()


def resync(*targets: LineTarget) -> list[Emission | Progress]:
    """A resumed billing step's resync unit: every open line's current target."""
    return [*(Emission(_update(None, t), RESYNC) for t in targets), Progress((), resync=True)]


def test_the_resync_corrects_a_line_only_the_killed_run_emitted() -> None:
    """The killed run applied A1 (line 1 billed: cap freed) and the ERP committed it; the CRM
    unit B0 that holds line 1 again had not arrived. The restart (snapshot after A0: line 1
    held) reads B0 first, then A1: line 1 stays held, so neither replayed unit emits it. Only
    the resync tells the writer that the engine holds line 1 held (chaos 01 found the hole)."""
    held, billed, other = line("1", 2), line("1", 0), line("2", 0)
    a0 = unit(A, 0, Emission(_update(None, held), "a0"))
    a1 = unit(A, 1, Emission(_update(held, billed), "a1"), Emission(_update(None, other), "a1"))
    engine = erp()
    run(partition(engine), [Progress((), resumed=True), *items_of([a0, a1])], [])
    assert [r["state"] for r in erp_state(engine)["lines"]] == ["billed", "billed"]
    b0r = unit(B, 0)  # line 1 was held already: B0 emits nothing
    a1r = unit(A, 1, Emission(_update(None, other), "a1"))  # line 1 unchanged: not emitted
    part = partition(engine)
    part.write_batch([Progress(((A, 0),), resumed=True), *resync(held), *items_of([b0r, a1r])])
    after = erp_state(engine)
    assert [(r["source_id"], r["state"]) for r in after["lines"]] == [
        ("1", "held"),
        ("2", "billed"),
    ]
    assert after["progress"] == [(B, 0), (A, 1)]
    engine.dispose()


def test_the_resync_is_dropped_when_nothing_is_replayed() -> None:
    """The ERP is where the snapshot is: the resync unit writes nothing (no batch at all)."""
    held = line("1", 2)
    a0 = unit(A, 0, Emission(_update(None, held), "a0"))
    engine = erp()
    run(partition(engine), [Progress((), resumed=True), *items_of([a0])], [])
    before = erp_state(engine)
    with capture_logs() as logs:
        partition(engine).write_batch([Progress(((A, 0),), resumed=True), *resync(held)])
    assert erp_state(engine) == before
    assert not [e for e in logs if e["event"] in ("replay_started", "erp_batch")]
    engine.dispose()


def test_a_close_the_erp_has_not_applied_is_applied_by_the_coalesced_batch() -> None:
    """Original: A0 (line 3), A1 (line 1), B0 (line 2), all billed in 2026-01; the snapshot
    held A0. The replay meets a close of 2026-01 (partition E, beyond what the ERP applied)
    between A1 and B0: it is applied — line 3, not in the prefix, becomes final — and the
    emitted lines end as in that order: line 1 final (emitted before the close), line 2
    open (after it)."""
    from dataflows.billing.periods import CLOSE
    from dataflows.billing.target import PeriodEvent

    l1, l2, l3 = line("1", 0), line("2", 0), line("3", 0)
    a0 = unit(A, 0, Emission(_update(None, l3), "a0"))
    a1 = unit(A, 1, Emission(_update(None, l1), "a1"))
    b0 = unit(B, 0, Emission(_update(None, l2), "b0"))
    close = unit("erp.periods:0", 0, Emission(PeriodEvent(CLOSE, "2026-01", "2026-01"), "e0"))
    engine = erp()
    run(partition(engine), [Progress((), resumed=True), *items_of([a0, a1, b0])], [])
    before = erp_state(engine)
    part = partition(engine)
    part.write_batch([Progress(a0.covers, resumed=True), *items_of([a1, close, b0])])
    after = erp_state(engine)
    finals = [(r["source_id"], r["final"], r["final_period"]) for r in after["lines"]]
    assert finals == [("1", True, "2026-01"), ("2", False, None), ("3", True, "2026-01")]
    assert after["ledger"] == before["ledger"] and after["outbox"] == before["outbox"]
    assert ("erp.periods:0", 0) in after["progress"]
    engine.dispose()


class _LostAck:
    """An engine whose first transaction commits and then reports a lost connection."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.begun = 0

    def connect(self) -> Any:
        return self._engine.connect()

    @contextmanager
    def begin(self) -> Iterator[Any]:
        self.begun += 1
        with self._engine.begin() as conn:
            yield conn
        if self.begun == 1:
            raise OperationalError("COMMIT", {}, Exception("server closed the connection"))


def test_a_retry_after_a_lost_commit_acknowledgement_applies_nothing_twice() -> None:
    """Each step is trusted as new when covers are given; the transaction retried after its
    commit did succeed must not post the steps again: ``billing_progress`` tells."""
    engine = erp()
    ErpWriter(engine).ensure_schema()
    flaky = _LostAck(engine)
    writer = ErpWriter(flaky, clock=lambda: NOW, retry_for_seconds=5)  # type: ignore[arg-type]
    batch = [
        Emission(_update(None, line("1", 0)), "p1"),
        Emission(_update(None, line("1", 1)), "p2"),
    ]
    result = writer.apply(batch, covers=((PSA, 7),))
    assert flaky.begun == 2 and result.entries == ()  # the retry found it applied
    state = erp_state(engine)
    assert [r["entry_type"] for r in state["ledger"]] == ["charge", "adjustment"]
    assert state["progress"] == [(PSA, 7)]
    engine.dispose()


def test_a_replay_does_not_wait_for_a_partition_the_flow_no_longer_reads() -> None:
    """The ERP recorded progress on a topic the flow stopped reading (a renamed periods
    topic): without ``topics`` the restart would gather forever, waiting for it."""
    units = story([[("line", 0, 0, 0, 0)], [("line", 0, 1, 0, 0)]])
    engine = erp()
    gone = Unit((), (("erp.old_schema.accounting_periods:0", 7),))
    run(partition(engine), [resumed(units, 0), *units[0].items, *gone.items], [])
    for topics, gathering in (((PSA.rsplit(":", 1)[0],), False), (None, True)):
        part = _ErpPartition(engine, None, 3600.0, lambda: NOW, topics=topics)
        part.write_batch([resumed(units, 1)])
        assert (part._gate.gathering is not None) is gathering, topics
    part = _ErpPartition(engine, None, 3600.0, lambda: NOW, topics=(PSA.rsplit(":", 1)[0],))
    part.write_batch([resumed(units, 1), *units[1].items])
    state, want = erp_state(engine), uninterrupted(units, [])
    assert state.pop("progress") == [
        ("erp.old_schema.accounting_periods:0", 7),
        *want.pop("progress"),
    ]
    assert state == want
