"""The incremental engine on scripted stories: exactly the affected lines are emitted."""

from __future__ import annotations

import pickle
from dataclasses import replace
from datetime import date

from billsync.change import Op
from billsync.model import Contract, ContractAmendment, Row, Timesheet
from dataflows.billing.batch import World, compute_targets
from dataflows.billing.engine import BillingEngine
from dataflows.billing.mappings import Mappings
from dataflows.billing.target import Delta, State

from .changes import delete, upsert
from .worlds import MAPPINGS, D, at, base_rows, edit, milestone_rows

T1 = ("timesheet", "1")


def loaded(rows: dict[str, Row], mappings: Mappings = MAPPINGS) -> BillingEngine:
    engine = BillingEngine(mappings)
    for row in rows.values():
        engine.apply(upsert(row, Op.READ))
    return engine


def check(engine: BillingEngine) -> None:
    world = World(engine.state.rows)
    lines, schedule = compute_targets(world, engine.mappings)
    assert engine.lines == lines
    assert engine.schedule == schedule


def ts(tid: int, hours: str, approved: int | None, project: str = "P1") -> Timesheet:
    return Timesheet(
        tid, "E1", project, date(2024, 3, 15), D(hours), True, "approved",
        at(approved) if approved is not None else None,
    )  # fmt: skip


def states(delta: Delta) -> dict[str, tuple[str | None, str | None]]:
    return {
        u.key[1]: (u.old.state.value if u.old else None, u.new.state.value if u.new else None)
        for u in delta.lines
    }


def test_snapshot_load_equals_batch() -> None:
    engine = loaded(milestone_rows())
    check(engine)
    assert engine.lines[T1].state is State.BILLED


def test_any_load_order_converges() -> None:
    rows = list(milestone_rows().values())
    forward, backward = BillingEngine(MAPPINGS), BillingEngine(MAPPINGS)
    for row in rows:
        forward.apply(upsert(row, Op.CREATE))
    for row in reversed(rows):
        backward.apply(upsert(row, Op.CREATE))
    assert forward.lines == backward.lines and forward.schedule == backward.schedule
    check(backward)


def test_late_line_reallocates_cap_and_emits_only_changed_lines() -> None:
    rows = base_rows()
    rows["C1"] = replace(rows["C1"], cap_amount=D("2000"), cap_period="contract")
    rows["T2"] = ts(2, "5", 17)
    rows["T3"] = ts(3, "1", 18, project="P1")
    engine = loaded(rows)
    assert engine.lines[("timesheet", "2")].state is State.BILLED  # 1125 + 750 = 1875
    assert engine.lines[("timesheet", "3")].state is State.PARTIALLY_HELD  # 125 of 150
    delta = engine.apply(upsert(ts(9, "2", 15)))  # approved before everyone: 300
    assert states(delta) == {"9": (None, "billed"), "2": ("billed", "partially_held"),
                             "3": ("partially_held", "held")}  # fmt: skip
    check(engine)
    delta = engine.apply(delete("timesheets", "9"))  # a deleted approved line releases
    assert states(delta) == {"9": ("billed", None), "2": ("partially_held", "billed"),
                             "3": ("held", "partially_held")}  # fmt: skip
    check(engine)


def test_project_moves_to_another_contract() -> None:
    rows = milestone_rows()
    rows["R2"] = replace(rows["R1"], rate_id="R2", contract_id="C2")
    engine = loaded(rows)
    delta = engine.apply(upsert(replace(rows["P1"], contract_id="C2")))
    assert [(u.old.reason if u.old else None, u.new.reason if u.new else None)
            for u in delta.lines] == [(None, "MILESTONE_CONTRACT")]  # fmt: skip
    check(engine)


def test_amendment_opened_and_approved() -> None:
    engine = loaded(base_rows())
    opened = ContractAmendment("AM1", "C1", "pending", date(2024, 4, 1))
    assert states(engine.apply(upsert(opened, Op.CREATE))) == {"1": ("billed", "held")}
    approved = replace(opened, status="approved")
    assert states(engine.apply(upsert(approved))) == {"1": ("held", "billed")}
    check(engine)


def test_duplicate_and_noop_changes_emit_nothing() -> None:
    engine = loaded(base_rows())
    again = engine.apply(upsert(base_rows()["T1"]))
    assert not again and again.notes
    notes_only = engine.apply(upsert(replace(base_rows()["T1"], notes="typo")))
    assert not notes_only  # the row changed, its target did not


def test_timesheet_changes_project_and_employee() -> None:
    rows = base_rows()
    rows["C1"] = replace(rows["C1"], cap_amount=D("1500"), cap_period="contract")
    rows["T2"] = ts(2, "7.5", 17)
    engine = loaded(rows)
    assert engine.lines[("timesheet", "2")].state is State.PARTIALLY_HELD
    moved = engine.apply(upsert(ts(1, "7.5", 16, project="P9")))  # to an unknown project
    assert states(moved) == {"1": ("billed", "held"), "2": ("partially_held", "billed")}
    check(engine)
    to_e2 = engine.apply(upsert(replace(ts(2, "7.5", 17), employee_id="E2")))
    assert states(to_e2) == {"2": ("billed", "held")}
    check(engine)


def test_contract_change_regroups_caps() -> None:
    rows = base_rows()
    rows["C1"] = replace(rows["C1"], cap_amount=D("1500"), cap_period="contract")
    rows["T2"] = replace(ts(2, "7.5", 17), work_date=date(2024, 4, 2))
    engine = loaded(rows)
    assert engine.lines[("timesheet", "2")].state is State.PARTIALLY_HELD
    contract = rows["C1"]
    assert isinstance(contract, Contract)
    delta = engine.apply(upsert(replace(contract, cap_period="month")))
    assert states(delta) == {"2": ("partially_held", "billed")}
    check(engine)
    delta = engine.apply(delete("contracts", "C1"))
    assert {s[1] for s in states(delta).values()} == {"held"}
    check(engine)


def test_with_mappings_reevaluates_and_state_pickles() -> None:
    engine = loaded(milestone_rows())
    other = Mappings.of({"CONSULTANT": ("SVC-CON", "4010")}, {"GB": D("0.25")})
    blob = pickle.dumps(engine.snapshot())
    restored = BillingEngine.restore(pickle.loads(blob))  # noqa: S301  # our own snapshot bytes
    delta = restored.with_mappings(other)
    assert restored.fingerprint == other.fingerprint != MAPPINGS.fingerprint
    assert {u.key: u.new.reason if u.new else None for u in delta.lines} == {
        ("milestone", "M1"): "UNMAPPED_LABOR_CATEGORY",
        T1: None,  # billed, tax now 25%
    }
    assert restored.lines[T1].tax_amount == D("281.25")
    check(restored)
    assert not restored.reevaluate_all()


def test_schedule_follows_project_and_contract() -> None:
    rows = milestone_rows()
    engine = loaded(rows)
    delta = engine.apply(upsert(replace(rows["C2"], currency="EUR")))
    assert [(s.old.currency if s.old else None, s.new.currency if s.new else None)
            for s in delta.schedule] == [("GBP", "EUR")]  # fmt: skip
    check(engine)
    delta = engine.apply(delete("milestones", "M1"))
    assert [s.new for s in delta.schedule] == [None]
    check(engine)


def test_unknown_table_is_ignored() -> None:
    engine = BillingEngine(MAPPINGS)
    change = upsert(base_rows()["T1"])
    assert not engine.apply(replace(change, table="invoices")).lines


def test_unexpected_values_of_referenced_rows_reclassify() -> None:
    """Allocation-only columns and quiet amendment statuses re-classify when a value the SPEC
    does not list appears or goes: each step equals batch, with the state expected."""
    rows = base_rows()
    engine = loaded(rows)
    contract = rows["C1"]
    assert isinstance(contract, Contract)
    capped = replace(contract, cap_amount=D("100000.00"))  # cap_period NULL
    retainer = replace(contract, contract_type="retainer")
    am = ContractAmendment("AM1", "C1", "approved", date(2024, 4, 1))
    steps: list[tuple[Row, str]] = [
        (capped, "exception"),  # a cap with no cap_period
        (replace(capped, cap_period="month"), "billed"),
        (replace(capped, cap_period="week"), "exception"),
        (replace(capped, cap_period="week", cap_amount=D("200000.00")), "exception"),
        (replace(capped, cap_period="week", cap_amount=None), "billed"),  # no cap: unread
        (replace(retainer, retainer_hours_monthly=D("-8")), "exception"),
        (replace(retainer, retainer_hours_monthly=D("2")), "billed"),
        (contract, "billed"),
        (am, "billed"),
        (replace(am, status="withdrawn"), "exception"),
        (replace(am, status="rejected"), "billed"),
        (replace(am, status=None), "exception"),
        (replace(am, contract_id="C9"), "billed"),  # moved to another contract
    ]
    for row, state in steps:
        engine.apply(upsert(row))
        check(engine)
        assert engine.lines[T1].state.value == state, row


def test_snapshot_of_older_rules_is_reevaluated_at_start() -> None:
    """A snapshot without rules_version (targets of the rules before UNEXPECTED_SOURCE_VALUE):
    the fingerprint check of the flow's start sees it stale, with_mappings emits the change."""
    rows = edit(base_rows(), "C1", status="expired")
    engine = loaded(rows)
    assert engine.lines[T1].reason == "UNEXPECTED_SOURCE_VALUE"
    old = loaded(base_rows()).lines[T1]  # what the older rules computed: billed
    state = engine.snapshot()
    state.lines[T1] = old
    del vars(state)["rules_version"]  # as pickled by the older engine
    restored = BillingEngine.restore(pickle.loads(pickle.dumps(state)))  # noqa: S301  # our own bytes
    assert restored.fingerprint != MAPPINGS.fingerprint
    delta = restored.with_mappings(MAPPINGS)
    assert states(delta) == {"1": ("billed", "exception")}
    assert restored.fingerprint == MAPPINGS.fingerprint
    check(restored)
