"""The dataflow, wired with testing sources: converges to the batch target on 1 and 2 workers,
posts nothing twice on replay, and keeps poison records as dead letters with their bytes."""

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
    Contract,
    ContractAmendment,
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
from sinks.erp import tables as t
from sinks.erp.sink import ErpSink
from tests.unit.flow.story import Recorder

D = Decimal
TS = datetime(2026, 3, 5, 12, tzinfo=UTC)


def _ts(i: int, hours: str, *, status: str = "approved", day: int = 2) -> Timesheet:
    return Timesheet(
        timesheet_id=i, employee_id="E1", project_id="P1", work_date=date(2026, 3, day),
        hours=D(hours), billable=True, status=status,
        approved_at=TS.replace(hour=i % 24) if status == "approved" else None,
        notes="ü ' ; --", updated_at=TS,
    )  # fmt: skip


def story() -> tuple[Recorder, list[Row]]:
    """A short story: billed time, a cap reached, a hold and release, an edit, a delete."""
    r = Recorder()
    acc = Account("A1", "Acme GmbH", "DE", "EUR", "CUST-1", TS)
    con = Contract("C1", "A1", "K-1", "time_and_materials", "active", "EUR", date(2026, 1, 1),
                   None, D("1500.00"), "contract", None, TS)  # fmt: skip
    prj = Project("P1", "P-1", "Rollout", "A1", "C1", "active", "DE01", TS)
    emp = Employee("E1", "Ana", "ana@example.com", "CONSULTANT", "CC-10", "DE01", True, TS)
    rate = ContractRate("R1", "C1", "CONSULTANT", D("120.00"), date(2026, 1, 1), None)
    t1, t2, t3 = _ts(1, "8.00"), _ts(2, "7.50"), _ts(3, "4.00", status="draft")
    for row in (t1, t2, t3, prj, emp, rate, acc, con):  # lines arrive before their context
        r.upsert(None, row)
    held = replace(prj, status="on_hold")
    r.upsert(prj, held)
    r.raw("psa.public.timesheets", b"poison", b"\x07not avro at all")  # poison
    amend = ContractAmendment("AM1", "C1", "pending", date(2026, 3, 1), TS)
    r.upsert(None, amend)
    r.upsert(held, prj)
    approved = replace(amend, status="approved")
    r.upsert(amend, approved)
    t1b = replace(t1, hours=D("10.00"))
    r.upsert(t1, t1b)
    t3b = replace(t3, status="approved", approved_at=TS.replace(hour=0))  # sorts first
    r.upsert(t3, t3b)
    r.delete(t2)
    return r, [acc, con, prj, emp, rate, t1b, t3b, approved]


def run(tmp_path: Path, runner: Callable[[Any], None], name: str) -> Engine:
    rec, _ = story()
    url = f"sqlite:///{tmp_path / name}.sqlite3"
    flow = build_flow(
        TestingSource(rec.messages, batch_size=3),
        decoder=lambda: ChangeDecoder(rec.schemas),
        mappings=load_mappings(),
        erp_sink=ErpSink(lambda: create_engine(url)),
    )
    runner(flow)
    return create_engine(url)


def state_rows(db: Engine) -> dict[tuple[str, str], dict[str, Any]]:
    with db.connect() as c:
        rows = c.execute(select(t.billing_line_state)).mappings().all()
    drop = {"source_position", "updated_at"}
    return {(r["source_type"], r["source_id"]): {k: v for k, v in r.items() if k not in drop}
            for r in rows}  # fmt: skip


def ledger_sums(db: Engine) -> dict[tuple[str, str], tuple[Decimal, Decimal]]:
    out: dict[tuple[str, str], tuple[Decimal, Decimal]] = {}
    tx = t.erp_billing_transactions
    with db.connect() as c:
        for r in c.execute(select(tx.c.source_type, tx.c.source_id, tx.c.amount, tx.c.tax_amount)):
            a, b = out.get((r[0], r[1]), (D(0), D(0)))
            out[(r[0], r[1])] = (a + r[2], b + r[3])
    return {k: v for k, v in out.items() if v != (D(0), D(0))}


RUNNERS: dict[str, Callable[[Any], None]] = {
    "one_worker": lambda flow: run_main(flow),
    "two_workers": lambda flow: cluster_main(flow, [], 0, worker_count_per_proc=2),
}


@pytest.mark.parametrize("runner", sorted(RUNNERS))
def test_flow_converges_to_the_batch_target(tmp_path: Path, runner: str) -> None:
    db = run(tmp_path, RUNNERS[runner], runner)
    _, final = story()
    targets, _ = compute_targets(World.of(final), load_mappings())
    rows = state_rows(db)
    assert set(rows) == set(targets)
    for key, target in targets.items():
        assert rows[key]["state"] == target.state.value, key
        assert rows[key]["reason"] == target.reason, key
        assert rows[key]["billed_amount"] == target.billed_amount, key
        assert rows[key]["held_amount"] == target.held_amount, key
    expected = {k: (v.billed_amount, v.tax_amount) for k, v in targets.items()
                if (v.billed_amount, v.tax_amount) != (D(0), D(0))}  # fmt: skip
    assert ledger_sums(db) == expected
    # the story's numbers: 4h then 10h at 120.00 under a 1500.00 contract cap
    assert rows[("timesheet", "3")]["billed_amount"] == D("480.00")
    assert rows[("timesheet", "1")]["state"] == "partially_held"
    assert rows[("timesheet", "1")]["billed_amount"] == D("1020.00")
    assert rows[("timesheet", "1")]["held_amount"] == D("180.00")
    assert ("timesheet", "2") not in rows  # deleted: no line state, ledger nets to 0


def test_one_and_two_workers_end_in_the_same_erp_state(tmp_path: Path) -> None:
    one = run(tmp_path, RUNNERS["one_worker"], "a")
    two = run(tmp_path, RUNNERS["two_workers"], "b")
    assert state_rows(one) == state_rows(two)
    assert ledger_sums(one) == ledger_sums(two)


def test_poison_record_is_a_dead_letter_with_its_bytes(tmp_path: Path) -> None:
    db = run(tmp_path, RUNNERS["one_worker"], "dlq")
    with db.connect() as c:
        rows = c.execute(
            select(t.billing_outbox.c.payload).where(t.billing_outbox.c.topic == "billing.dlq")
        ).all()
    assert len(rows) == 1
    dead = orjson.loads(rows[0][0])
    assert bytes.fromhex(dead["value"]) == b"\x07not avro at all"
    assert dead["topic"] == "psa.public.timesheets" and dead["offset"] == 3
    assert dead["error_type"] == "BadFraming"


def test_with_two_workers_the_erp_writer_runs_beside_the_billing_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the ERP sink's placeholder partition sorts first, so Bytewax gives the writing partition
    # to worker 1 while the key "billing" hashes to worker 0 (sinks/erp/sink.py)
    import threading

    from dataflows.logic import BillingLogic
    from sinks.erp import sink

    threads: dict[str, set[int]] = {"billing": set(), "writer": set()}
    on_item, write_batch = BillingLogic.on_item, sink._ErpPartition.write_batch

    def billing(self: BillingLogic, value: Any) -> Any:
        threads["billing"].add(threading.get_ident())
        return on_item(self, value)

    def writer(self: Any, values: Any) -> None:
        threads["writer"].add(threading.get_ident())
        write_batch(self, values)

    monkeypatch.setattr(BillingLogic, "on_item", billing)
    monkeypatch.setattr(sink._ErpPartition, "write_batch", writer)
    db = run(tmp_path, RUNNERS["two_workers"], "placed")
    assert len(threads["billing"]) == 1 and len(threads["writer"]) == 1
    assert threads["billing"] != threads["writer"]
    assert state_rows(db) == state_rows(run(tmp_path, RUNNERS["one_worker"], "one"))
    assert sink.ErpSink(lambda: db).list_parts() == [sink.PLACEHOLDER, "erp"]
