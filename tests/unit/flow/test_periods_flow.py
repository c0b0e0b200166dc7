"""Closed periods through the whole dataflow (SPEC 2b), with testing sources and a SQLite ERP.

March is closed by an ``accounting_periods`` row on the ``erp`` topic; then the project goes
on hold (only April's line is held: March's is final and untouched), is released, and
March's line is corrected by its own row: the correction is posted into April (the first
open period), the line is open again, and ``billing.exceptions`` gets a ``corrected`` event
with reason ``CHANGED_AFTER_CLOSE``. The audit of the result (final items against their
frozen values, open items against the batch target) is clean, on one and on two workers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from bytewax.testing import TestingSource, cluster_main, run_main
from sqlalchemy import Engine, create_engine, select

from billsync.model import (
    Account,
    AccountingPeriod,
    Contract,
    ContractRate,
    Employee,
    Project,
    Row,
    Timesheet,
)
from dataflows.billing.batch import World, compute_targets
from dataflows.billing.mappings import load_mappings
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.flow import build_flow
from ops.reads.audit.compare import compare, read_finals
from sinks.erp import tables as t
from sinks.erp.sink import ErpSink
from tests.unit.flow.story import Recorder

D = Decimal
TS = datetime(2026, 3, 5, 12, tzinfo=UTC)
T1, T2 = ("timesheet", "1"), ("timesheet", "2")


def _ts(i: int, hours: str, day: date) -> Timesheet:
    return Timesheet(i, "E1", "P1", day, D(hours), True, "approved", TS.replace(hour=i),
                     None, TS)  # fmt: skip


def story() -> tuple[Recorder, list[Row]]:
    r = Recorder()
    acc = Account("A1", "Acme GmbH", "DE", "EUR", "CUST-1", TS)
    con = Contract("C1", "A1", "K-1", "time_and_materials", "active", "EUR", date(2026, 1, 1),
                   None, None, "contract", None, TS)  # fmt: skip
    prj = Project("P1", "P-1", "Rollout", "A1", "C1", "active", "DE01", TS)
    emp = Employee("E1", "Ana", "ana@example.com", "CONSULTANT", "CC-10", "DE01", True, TS)
    rate = ContractRate("R1", "C1", "CONSULTANT", D("120.00"), date(2026, 1, 1), None)
    t1, t2 = _ts(1, "8.00", date(2026, 3, 2)), _ts(2, "7.50", date(2026, 4, 1))
    for row in (acc, con, prj, emp, rate, t1, t2):
        r.upsert(None, row)
    march = AccountingPeriod("2026-03", "closed", TS, "finance")
    r.upsert(None, march)
    held = replace(prj, status="on_hold")
    r.upsert(prj, held)
    r.upsert(held, prj)
    t1b = replace(t1, hours=D("10.00"))
    r.upsert(t1, t1b)
    return r, [acc, con, prj, emp, rate, t1b, t2, march]


def run(tmp_path: Path, runner: Callable[[Any], None], name: str) -> Engine:
    rec, _ = story()
    url = f"sqlite:///{tmp_path / name}.sqlite3"
    flow = build_flow(
        TestingSource(rec.messages, batch_size=2),
        decoder=lambda: ChangeDecoder(rec.schemas),
        mappings=load_mappings(),
        erp_sink=ErpSink(lambda: create_engine(url)),
        segment_dir=tmp_path / f"{name}-finals",
    )
    runner(flow)
    return create_engine(url)


RUNNERS: dict[str, Callable[[Any], None]] = {
    "one_worker": lambda flow: run_main(flow),
    "two_workers": lambda flow: cluster_main(flow, [], 0, worker_count_per_proc=2),
}


def _outbox(db: Engine, topic: str) -> list[dict[str, Any]]:
    o = t.billing_outbox
    with db.connect() as c:
        rows = c.execute(select(o.c.payload).where(o.c.topic == topic).order_by(o.c.id))
        return [orjson.loads(p) for p in rows.scalars()]


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_a_close_freezes_march_and_a_correction_lands_in_april(tmp_path: Path, runner: str) -> None:
    db = run(tmp_path, RUNNERS[runner], runner)
    tx = t.erp_billing_transactions
    with db.connect() as c:
        ledger = c.execute(
            select(
                tx.c.source_id, tx.c.entry_type, tx.c.amount, tx.c.period, tx.c.posting_period
            ).order_by(tx.c.source_id, tx.c.seq)
        ).all()
        state = {
            (r["source_type"], r["source_id"]): r
            for r in c.execute(select(t.billing_line_state)).mappings()
        }
    t1 = [tuple(r[1:]) for r in ledger if r[0] == "1"]
    # March's line: charged into March, never reversed by the hold; its correction in April
    assert t1 == [("charge", D("960.00"), "2026-03", "2026-03"),
                  ("adjustment", D("240.00"), "2026-03", "2026-04")]  # fmt: skip
    t2 = [tuple(r[1:]) for r in ledger if r[0] == "2"]
    assert t2[0][0] == "charge" and all(e[3] == "2026-04" for e in t2)
    assert not state[T1]["final"] and state[T1]["billed_amount"] == D("1200.00")
    events = _outbox(db, "billing.exceptions")
    corrected = [e for e in events if e["event"] == "corrected"]
    assert [(e["source_id"], e["reason"]) for e in corrected] == [("1", "CHANGED_AFTER_CLOSE")]
    held = [(e["source_id"], e["event"]) for e in events if e["event"] != "corrected"]
    assert held == [("2", "entered"), ("2", "released")]  # the hold touched April's line only

    _, rows = story()
    with db.connect() as c:
        finals = read_finals(c)
        lines, schedule = compute_targets(World.of(rows), load_mappings(), finals)
        assert compare(c, lines, schedule, finals) == []


def test_the_close_marks_final_in_the_erp(tmp_path: Path) -> None:
    rec, _ = story()
    cut = next(i for i, m in enumerate(rec.messages) if str(m.topic).endswith("accounting_periods"))
    url = f"sqlite:///{tmp_path / 'cut'}.sqlite3"
    flow = build_flow(
        TestingSource(rec.messages[: cut + 2]),  # the close, then the hold
        decoder=lambda: ChangeDecoder(rec.schemas),
        mappings=load_mappings(),
        erp_sink=ErpSink(lambda: create_engine(url)),
    )
    run_main(flow)
    with create_engine(url).connect() as c:
        rows = {
            (r["source_type"], r["source_id"]): r
            for r in c.execute(select(t.billing_line_state)).mappings()
        }
    assert (rows[T1]["final"], rows[T1]["final_period"], rows[T1]["state"]) == (
        True, "2026-03", "billed")  # fmt: skip
    assert (rows[T2]["final"], rows[T2]["state"]) == (False, "held")
