"""Read-side queries on SQLite: the queue, exact sums, figures per period, audit runs."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from ops.reads.queries import audit_runs, figures, queue
from tests.unit.queries.erp import NOW, erp

D = Decimal


def test_queue_lists_only_queue_states_oldest_first_with_age_and_cause() -> None:
    with erp().connect() as conn:
        lines = queue.queued_lines(conn, NOW)
    assert [x.source_id for x in lines] == ["5", "4", "3", "2", "1"]
    assert {x.state for x in lines} == {"held", "exception", "partially_held"}
    oldest = lines[0]
    assert oldest.age == timedelta(hours=5)
    assert oldest.source_position == "psa:lsn=5"
    row = queue.as_row(oldest)
    assert row["age"] == "5h 0m" and row["age_s"] == 5 * 3600


def test_queue_filters_by_reason_and_contract() -> None:
    with erp().connect() as conn:
        on_hold = queue.queued_lines(conn, NOW, reason="PROJECT_ON_HOLD")
        c2 = queue.queued_lines(conn, NOW, contract_id="C2")
    assert [x.source_id for x in on_hold] == ["2", "1"]
    assert [x.source_id for x in c2] == ["2"]


def test_counts_and_exact_amounts_by_reason() -> None:
    with erp().connect() as conn:
        counts = queue.queue_counts(conn)
        totals = queue.holds_by_reason(conn)
    assert counts == {
        ("held", "PROJECT_ON_HOLD"): 2,
        ("exception", "NO_RATE"): 1,
        ("partially_held", "BILLING_CAP_EXCEEDED"): 2,
    }
    cap = next(x for x in totals if x.reason == "BILLING_CAP_EXCEEDED")
    # 0.10 + 0.20 is 0.30 exactly (SQLite SUM over decimal text would give a float)
    assert cap.held_amount == D("0.30") and isinstance(cap.held_amount, Decimal)
    assert totals[0].lines == 2


def test_figures_by_period_are_exact_and_ordered() -> None:
    with erp().connect() as conn:
        rows = figures.snapshot_rows(conn)
        march = figures.snapshot_rows(conn, "2026-03")
    assert [r["period"] for r in rows] == ["2026-02", "2026-03", "2026-03"]
    assert len(march) == 2
    totals = figures.by_period(rows)
    assert [p.period for p in totals] == ["2026-02", "2026-03"]
    assert totals[1].billed_amount == D("960.10")
    assert totals[1].held_amount == D("0.30")


def test_recomputed_figures_come_from_line_state() -> None:
    with erp().connect() as conn:
        rows = figures.recomputed(conn)
    assert [(r["project_id"], r["period"]) for r in rows] == [("P1", "2026-03")]
    assert rows[0]["held_count"] == 4 and rows[0]["exception_count"] == 1
    assert rows[0]["held_amount"] == D("0.30")
    assert rows[0]["approved_hours"] == D("56.00")


def test_audit_runs_last_wins() -> None:
    engine = erp()
    with engine.begin() as conn:
        assert audit_runs.last(conn) is None
        audit_runs.record(conn, audit_runs.AuditRun(NOW, 10, 2, 3))
        audit_runs.record(conn, audit_runs.AuditRun(NOW + timedelta(minutes=5), 10, 2, 0))
    with engine.connect() as conn:
        last = audit_runs.last(conn)
    assert last is not None and last.differences == 0 and last.run_at > NOW
