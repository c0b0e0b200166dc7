"""The ERP writer on SQLite: nets to the target, replays post nothing, outbox and recon keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import Engine, create_engine, func, select

from dataflows.billing.target import (
    LineTarget,
    LineUpdate,
    ScheduleLine,
    ScheduleUpdate,
    SourceType,
    State,
)
from dataflows.emissions import Emission
from sinks.erp import tables as t
from sinks.erp.writer import ErpWriter, line_row

D = Decimal


def target(
    billed: str, state: State = State.BILLED, reason: str | None = None, **kw: object
) -> LineTarget:
    base: dict[str, object] = dict(
        source_type=SourceType.TIMESHEET,
        source_id="7",
        state=state,
        reason=reason,
        contract_id="C1",
        project_id="P1",
        period="2026-03",
        billable_amount=D(billed),
        billed_amount=D(billed),
        tax_amount=(D(billed) * D("0.20")).quantize(D("0.01")),
        currency="EUR",
        hours=D("8.00"),
        rate=D("120.00"),
        billable=True,
        work_date=date(2026, 3, 2),
    )
    base.update(kw)
    return LineTarget(**base)  # type: ignore[arg-type]


def em(new: LineTarget | None, pos: str) -> Emission:
    return Emission(LineUpdate(("timesheet", "7"), None, new), pos)


@pytest.fixture
def db() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    yield engine
    engine.dispose()


@pytest.fixture
def writer(db: Engine) -> ErpWriter:
    w = ErpWriter(db, clock=lambda: datetime(2026, 4, 1, tzinfo=UTC))
    w.ensure_schema()
    return w


def ledger(db: Engine) -> list[tuple[str, Decimal, Decimal, int]]:
    tx = t.erp_billing_transactions
    with db.connect() as c:
        return [
            (r.entry_type, r.amount, r.tax_amount, r.seq)
            for r in c.execute(select(tx).order_by(tx.c.seq))
        ]


def test_charge_adjust_reverse_and_sums(writer: ErpWriter, db: Engine) -> None:
    writer.apply([em(target("960.00"), "psa:lsn=1:tx=1")])
    writer.apply([em(target("480.00"), "psa:lsn=2:tx=2")])
    writer.apply([em(None, "psa:lsn=3:tx=3")])
    assert ledger(db) == [
        ("charge", D("960.00"), D("192.00"), 0),
        ("adjustment", D("-480.00"), D("-96.00"), 1),
        ("reversal", D("-480.00"), D("-96.00"), 2),
    ]
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(t.billing_line_state)).scalar() == 0


def test_replay_posts_nothing_twice(writer: ErpWriter, db: Engine) -> None:
    batch = [em(target("100.00"), "p1"), em(target("250.00"), "p2")]
    first = writer.apply(batch)
    again = writer.apply(batch)  # a crash-replay of the same batch
    assert len(first.entries) == 2  # each step posts its own entry
    assert again.entries == () and again.lines_changed == 0
    assert [r[1] for r in ledger(db)] == [D("100.00"), D("150.00")]


def test_held_line_emits_exception_events_and_release(writer: ErpWriter, db: Engine) -> None:
    held = target("0", State.HELD, "PROJECT_ON_HOLD", billable_amount=D("0.00"))
    writer.apply([em(held, "p1")])
    writer.apply([em(target("960.00"), "p2")])
    with db.connect() as c:
        rows = c.execute(
            select(t.billing_outbox.c.topic, t.billing_outbox.c.payload).order_by(
                t.billing_outbox.c.id
            )
        ).all()
    events = [orjson.loads(p) for topic, p in rows if topic == "billing.exceptions"]
    assert [(e["event"], e["new_state"], e["old_reason"]) for e in events] == [
        ("entered", "held", None),
        ("released", "billed", "PROJECT_ON_HOLD"),
    ]
    assert events[1]["source_position"] == "p2"
    assert [topic for topic, _ in rows].count("billing.transactions") == 1


def test_recon_keys_marked_for_old_and_new_period(writer: ErpWriter, db: Engine) -> None:
    writer.apply([em(target("10.00"), "p1")])
    writer.apply([em(target("10.00", period="2026-04"), "p2")])
    with db.connect() as c:
        keys = set(c.execute(select(t.recon_dirty.c.project_id, t.recon_dirty.c.period)).all())
    assert keys == {("P1", "2026-03"), ("P1", "2026-04")}


def test_money_is_exact_on_sqlite(writer: ErpWriter, db: Engine) -> None:
    writer.apply([em(target("12345678901.23"), "p1")])
    assert ledger(db)[0][1] == D("12345678901.23")


def test_schedule_upsert_and_delete(writer: ErpWriter, db: Engine) -> None:
    line = ScheduleLine("M1", "C1", "P1", date(2026, 5, 1), D("5000.00"), "EUR", "planned")
    writer.apply([Emission(ScheduleUpdate("M1", None, line), "p1")])
    writer.apply([Emission(ScheduleUpdate("M1", line, None), "p2")])
    with db.connect() as c:
        assert c.execute(select(func.count()).select_from(t.invoice_schedule)).scalar() == 0


def test_a_line_moving_period_is_reversed_there_and_charged_here(
    writer: ErpWriter, db: Engine
) -> None:
    writer.apply([em(target("100.00"), "p1")])
    writer.apply([em(target("100.00", period="2026-04", work_date=date(2026, 4, 1)), "p2")])
    tx = t.erp_billing_transactions
    with db.connect() as c:
        by_period = dict(c.execute(select(tx.c.period, func.count()).group_by(tx.c.period)).all())
        rows = c.execute(select(tx.c.period, tx.c.entry_type, tx.c.amount).order_by(tx.c.seq)).all()
    assert [tuple(r) for r in rows] == [
        ("2026-03", "charge", D("100.00")),
        ("2026-03", "reversal", D("-100.00")),
        ("2026-04", "charge", D("100.00")),
    ]
    assert by_period == {"2026-03": 2, "2026-04": 1}


# (case, dimension changes with the same amounts) — every one is reversed and re-charged
DIMENSION_CHANGES = [
    ("customer", {"erp_customer_id": "CUST-9"}),
    ("legal entity", {"legal_entity": "DE-GMBH"}),
    ("item code", {"erp_item_code": "SVC-CX"}),
    ("revenue account", {"revenue_account": "4999"}),
    ("cost center", {"cost_center": "CC-20"}),
    ("rate and hours", {"hours": D("10.00"), "rate": D("96.00")}),
    ("work date", {"work_date": date(2026, 3, 9)}),
]
DIMS = dict(erp_customer_id="CUST-1", legal_entity="UK-LTD", erp_item_code="SVC-CON",
            revenue_account="4010", cost_center="CC-10")  # fmt: skip


@pytest.mark.parametrize(
    "changes", [c[1] for c in DIMENSION_CHANGES], ids=[c[0] for c in DIMENSION_CHANGES]
)
def test_a_dimension_change_alone_is_posted(
    writer: ErpWriter, db: Engine, changes: dict[str, object]
) -> None:
    writer.apply([em(target("960.00", **DIMS), "p1")])
    moved = target("960.00", **{**DIMS, **changes})
    writer.apply([em(moved, "p2")])
    writer.apply([em(moved, "p2")])  # a replay posts nothing more
    tx = t.erp_billing_transactions
    with db.connect() as c:
        rows = c.execute(select(tx).order_by(tx.c.seq)).mappings().all()
    assert [(r["entry_type"], r["amount"]) for r in rows] == [
        ("charge", D("960.00")),
        ("reversal", D("-960.00")),
        ("charge", D("960.00")),
    ]
    before = target("960.00", **DIMS)
    for f, v in changes.items():  # the reversal under the old value, the charge under the new
        assert (rows[1][f], rows[2][f]) == (getattr(before, f), v)


def exceptions(db: Engine) -> list[tuple[str, str | None, str | None, str | None]]:
    """(source_id, event, new_state, source_position) of every billing.exceptions record."""
    o = t.billing_outbox
    with db.connect() as c:
        payloads = c.execute(
            select(o.c.payload).where(o.c.topic == "billing.exceptions").order_by(o.c.id)
        ).scalars()
        events = [orjson.loads(p) for p in payloads]
    return [(e["source_id"], e["event"], e["new_state"], e["source_position"]) for e in events]


def held_line(sid: str = "7") -> LineTarget:
    return target("0", State.HELD, "PROJECT_ON_HOLD", billable_amount=D("0.00"), source_id=sid)


def em_of(sid: str, new: LineTarget | None, pos: str) -> Emission:
    return Emission(LineUpdate(("timesheet", sid), None, new), pos)


def test_held_and_released_within_one_batch_emits_both_events(
    writer: ErpWriter, db: Engine
) -> None:
    writer.apply([em(target("960.00"), "p1")])
    result = writer.apply([em(held_line(), "p2"), em(target("960.00"), "p3")])
    assert exceptions(db) == [("7", "entered", "held", "p2"), ("7", "released", "billed", "p3")]
    assert result.exception_events == 2
    # each step is posted, as if each emission were its own batch
    assert [e.entry_type for e in result.entries] == ["reversal", "charge"]
    assert [r[0] for r in ledger(db)] == ["charge", "reversal", "charge"]


def test_events_keep_emission_order_across_lines(writer: ErpWriter, db: Engine) -> None:
    writer.apply(
        [
            em(held_line(), "p1"),
            em_of("8", held_line("8"), "p2"),
            em(target("960.00"), "p3"),
            em_of("8", target("5.00", source_id="8"), "p4"),
        ]
    )
    assert [(sid, pos) for sid, _e, _s, pos in exceptions(db)] == [
        ("7", "p1"),
        ("8", "p2"),
        ("7", "p3"),
        ("8", "p4"),
    ]


# (case, the original run cut into batches) — a replay of all its emissions in one batch
HISTORY = [
    em(target("960.00"), "p1"),
    em(held_line(), "p2"),
    em(target("960.00"), "p3"),
    em(held_line(), "p4"),
    em(target("480.00", state=State.PARTIALLY_HELD, reason="BILLING_CAP_EXCEEDED"), "p5"),
]
CUTS = [
    ("one batch", [HISTORY]),
    ("one per emission", [[e] for e in HISTORY]),
    ("uneven", [HISTORY[:2], HISTORY[2:]]),
    ("crash after the first batch", [HISTORY[:3]]),
]


@pytest.mark.parametrize("batches", [c[1] for c in CUTS], ids=[c[0] for c in CUTS])
def test_a_replay_emits_only_what_the_erp_does_not_reflect(
    writer: ErpWriter, db: Engine, batches: list[list[Emission]]
) -> None:
    for batch in batches:
        writer.apply(batch)
    writer.apply(HISTORY)  # restart: the same emissions again, batched differently
    writer.apply(HISTORY[3:])  # and a replay of a suffix
    assert [(e, pos) for _sid, e, _s, pos in exceptions(db)] == [
        ("entered", "p2"),
        ("released", "p3"),
        ("entered", "p4"),
        ("changed", "p5"),
    ]
    assert sum(r[1] for r in ledger(db)) == D("480.00")


def test_a_replay_of_a_line_that_ends_without_line_state_re_emits_its_events(
    writer: ErpWriter, db: Engine
) -> None:
    """The documented limit: no row is left to recognise an applied step by."""
    batch = [em(held_line(), "p1"), em(None, "p2")]
    writer.apply(batch)
    writer.apply(batch)
    assert [(e, pos) for _sid, e, _s, pos in exceptions(db)] == [
        ("entered", "p1"),
        ("released", "p2"),
    ] * 2


# (case, second target) — the stored row equals it, whether its indexed columns move or not
RESTATES = [
    ("amounts only", target("480.00")),
    ("state and reason", held_line()),
    ("project and period", target("960.00", project_id="P2", period="2026-04")),
]


@pytest.mark.parametrize("second", [c[1] for c in RESTATES], ids=[c[0] for c in RESTATES])
def test_a_stored_line_state_is_updated_in_place(
    writer: ErpWriter, db: Engine, second: LineTarget
) -> None:
    writer.apply([em(target("960.00"), "p1")])
    writer.apply([em(second, "p2")])
    with db.connect() as c:
        (row,) = c.execute(select(t.billing_line_state)).mappings().all()
    assert dict(row) == line_row(second, "p2", datetime(2026, 4, 1, tzinfo=UTC))


def _positions(db: Engine) -> list[str | None]:
    tx = t.erp_billing_transactions
    with db.connect() as c:
        return [r.source_position for r in c.execute(select(tx).order_by(tx.c.seq))]


NEWER, OLDER = "psa:lsn=205968:tx=3451:commit=205912", "psa:lsn=196256:tx=3430:commit=161136"


def test_a_coalesced_correction_never_posts_behind_the_items_newest_position(
    writer: ErpWriter, db: Engine
) -> None:
    """chaos 01 on 2 processes of 2 (2026-12-01): the killed run last posted the line at tx
    3451; the replay, interleaving the sources otherwise, ended the line's prefix at tx 3430
    with another target. The difference is posted once, under the newer position: the
    ledger's positions never go backwards in the source's commit order."""
    from ops.reads.audit.positions import position_regressions

    writer.apply([em(target("960.00"), NEWER)])
    result = writer.apply_coalesced([em(target("480.00"), OLDER)], finals={}, periods=[],
                                    covers=())  # fmt: skip
    assert [e.amount for e in result.entries] == [D("-480.00")]
    assert _positions(db) == [NEWER, NEWER]
    tx = t.erp_billing_transactions
    with db.connect() as c:
        rows = c.execute(select(tx).order_by(tx.c.source_id, tx.c.seq)).mappings().all()
    assert list(position_regressions(rows)) == []
    # a correction whose own position is the newer one keeps it; normal batches are untouched
    writer.apply_coalesced([em(target("300.00"), "psa:lsn=300000:tx=4000:commit=300000")],
                           finals={}, periods=[], covers=())  # fmt: skip
    writer.apply([em(target("200.00"), "crm:mariadb-bin.000001:100:row=0")])
    assert _positions(db)[2:] == ["psa:lsn=300000:tx=4000:commit=300000",
                                  "crm:mariadb-bin.000001:100:row=0"]  # fmt: skip
