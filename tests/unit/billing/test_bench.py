"""The core benchmark runs, and the synthetic stream it measures is what batch computes."""

from __future__ import annotations

from dataflows.billing.batch import World, compute_targets
from dataflows.billing.bench import run_core_bench, synthetic_changes
from dataflows.billing.engine import BillingEngine
from dataflows.billing.mappings import load_mappings


def test_bench_reports_figures() -> None:
    result = run_core_bench(3000)
    assert result.changes == 3000 and result.open_lines > 0
    assert result.events_per_s > 0 and result.bytes_per_open_line > 0


def test_synthetic_stream_converges_to_batch() -> None:
    mappings = load_mappings()
    engine = BillingEngine(mappings)
    for change in synthetic_changes(4000, seed=3):
        engine.apply(change)
    lines, schedule = compute_targets(World(engine.state.rows), mappings)
    assert engine.lines == lines and engine.schedule == schedule
    assert {t.state.value for t in lines.values()} >= {"billed", "held"}
