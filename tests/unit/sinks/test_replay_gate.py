"""sinks/erp/replay.py, the pure parts: units, the replayed prefix, the final flags it leaves."""

from __future__ import annotations

import pytest

from dataflows.billing.periods import CLOSE, REOPEN
from dataflows.billing.target import LineTarget, LineUpdate, PeriodEvent
from dataflows.emissions import Emission, Progress
from sinks.erp.replay import Coalesced, ReplayGate, Steps, final_after

from .replay_story import line

A, B = "psa.billing:0", "crm.billing:0"


def em(sid: str, kind: int = 0, *, reopened: bool = False) -> Emission:
    new = line(sid, kind)
    return Emission(LineUpdate(new.key, None, new, reopened=reopened), f"p{sid}.{kind}")


def close(period: str) -> PeriodEvent:
    return PeriodEvent(CLOSE, period, period)


def reopen(period: str) -> PeriodEvent:
    return PeriodEvent(REOPEN, period, None)


def test_without_progress_emissions_are_applied_as_they_come() -> None:
    gate = ReplayGate()
    assert gate.feed([em("1"), em("2")]) == [Steps((em("1"), em("2")), None)]
    assert gate.snapshot() is None


def test_complete_units_make_one_batch_and_an_incomplete_one_waits() -> None:
    gate = ReplayGate()
    out = gate.feed([em("1"), Progress(((A, 3),)), em("2"), Progress(((A, 5), (B, 1))), em("3")])
    assert out == [Steps((em("1"), em("2")), ((B, 1), (A, 5)))]  # sorted by partition
    state = gate.snapshot()
    assert state is not None and state.carry == [em("3")]  # kept in the Bytewax snapshot
    assert gate.feed([em("4"), Progress(((A, 6),))]) == [Steps((em("3"), em("4")), ((A, 6),))]
    assert gate.feed([Progress(((A, 7),))]) == [Steps((), ((A, 7),))]  # a unit that emits nothing


# (case, what the snapshot held, what the ERP committed, pending partitions)
RESUMES = [
    ("fresh start, empty ERP", (), {}, {}),
    ("snapshot at the ERP's point", ((A, 5),), {A: 5}, {}),
    ("snapshot ahead of the ERP", ((A, 7), (B, 2)), {A: 5, B: 2}, {}),
    ("ERP ahead in one partition", ((A, 3), (B, 2)), {A: 5, B: 2}, {A: 5}),
    ("a partition the snapshot never saw", ((A, 3),), {A: 3, B: 0}, {B: 0}),
    ("rebuild: fresh start into an ERP with progress", (), {A: 5, B: 2}, {A: 5, B: 2}),
]


@pytest.mark.parametrize(
    ("held", "committed", "pending"), [c[1:] for c in RESUMES], ids=[c[0] for c in RESUMES]
)
def test_resume_gathers_the_partitions_the_erp_is_ahead_in(
    held: tuple[tuple[str, int], ...], committed: dict[str, int], pending: dict[str, int]
) -> None:
    gate = ReplayGate()
    assert gate.resume(held, committed) == []
    got = gate.gathering.pending if gate.gathering is not None else {}
    assert got == pending


def test_the_prefix_is_gathered_then_coalesced_and_the_rest_is_normal() -> None:
    gate = ReplayGate()
    gate.resume(((A, 1),), {A: 4, B: 0})
    assert gate.feed([em("1", 0), Progress(((A, 2),))]) == []
    assert gate.feed([em("1", 1), em("2"), Progress(((A, 4),))]) == []  # B still pending
    out = gate.feed(
        [Emission(close("2026-01"), "e"), Progress(((B, 0),)), em("3"), Progress(((A, 5),))]
    )
    coalesced, rest = out
    assert isinstance(coalesced, Coalesced)
    assert coalesced.lines == (em("1", 1), em("2"))  # each line's last emission, in order
    assert coalesced.finals == {("timesheet", "1"): "2026-01", ("timesheet", "2"): "2026-01"}
    assert coalesced.periods == ((close("2026-01"), ((B, 0),)),)
    assert (coalesced.units, coalesced.covers) == (3, ((B, 0), (A, 4)))
    assert coalesced.reached == ((B, 0), (A, 4))
    assert rest == Steps((em("3"),), ((A, 5),))
    assert gate.gathering is None and gate.snapshot() is None


def test_a_line_reopened_inside_the_prefix_keeps_the_flag_on_its_last_emission() -> None:
    gate = ReplayGate()
    gate.resume((), {A: 1})
    gate.feed([em("1", 0, reopened=True), Progress(((A, 0),))])
    (coalesced,) = gate.feed([em("1", 1), Progress(((A, 1),))])
    assert isinstance(coalesced, Coalesced)
    (last,) = coalesced.lines
    assert isinstance(last.update, LineUpdate) and last.update.reopened
    assert last.update.new == line("1", 1)


def test_a_gathering_restored_from_a_snapshot_goes_on() -> None:
    gate = ReplayGate()
    gate.resume((), {A: 3})
    gate.feed([em("1"), Progress(((A, 1),))])
    restored = ReplayGate(gate.snapshot())  # the flow crashed; restarted after unit A1
    assert restored.resume(((A, 1),), {A: 3}) == []
    (coalesced,) = restored.feed([em("2"), Progress(((A, 3),))])
    assert isinstance(coalesced, Coalesced) and coalesced.units == 2
    assert coalesced.lines == (em("1"), em("2"))


# (case, the line's last target (kind), the period events after it, final_period)
FINALS: list[tuple[str, int | None, list[PeriodEvent], str | None]] = [
    ("no event", 0, [], None),
    ("billed, closed", 0, [close("2026-01")], "2026-01"),
    ("billed, closed, reopened", 0, [close("2026-01"), reopen("2026-01")], None),
    ("closed twice: the first close", 0, [close("2026-01"), close("2026-02")], "2026-01"),
    ("reopen of a later close", 0, [close("2026-01"), close("2026-02"), reopen("2026-02")],
     "2026-01"),
    ("closed, reopened, closed", 0, [close("2026-01"), reopen("2026-01"), close("2026-01")],
     "2026-01"),
    ("held: carried forward", 2, [close("2026-01")], None),
    ("partially held: final", 3, [close("2026-02")], "2026-02"),
    ("exception: carried forward", 5, [close("2026-03")], None),
    ("a close before its period", 0, [close("2025-12")], None),
    ("no line state", None, [close("2026-01")], None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "events", "final"), [c[1:] for c in FINALS], ids=[c[0] for c in FINALS]
)
def test_final_after(kind: int | None, events: list[PeriodEvent], final: str | None) -> None:
    target: LineTarget | None = line("1", kind) if kind is not None else None
    assert final_after(target, events) == final


def test_a_snapshot_is_not_changed_by_what_the_gate_sees_next() -> None:
    gate = ReplayGate()
    gate.resume((), {A: 3})
    gate.feed([em("1"), Progress(((A, 1),)), em("2")])
    state = gate.snapshot()
    gate.feed([Progress(((A, 2),)), em("3", 1), Progress(((A, 3),))])  # released meanwhile
    assert state is not None and state.gathering is not None
    assert (state.gathering.units, state.carry) == (1, [em("2")])
    assert list(state.gathering.lines) == [("timesheet", "1")]
