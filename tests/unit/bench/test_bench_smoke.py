"""Each bench runs at a tiny size and prints figures of the documented shape (no timing)."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from billsync.change import Change
from billsync.model import AccountingPeriod, Timesheet
from dataflows.cdc.decoder import ChangeDecoder
from ops.bench.core import encode_stream
from ops.bench.state import run_state
from ops.bench.world import history_stream, period_of
from ops.cli import app


def test_encoded_stream_decodes_to_the_rows_it_was_built_from() -> None:
    encoder, records = encode_stream(3000)
    dec = ChangeDecoder(encoder.schemas)
    changes = [dec.decode(r.topic, 0, i, r.key, r.value) for i, r in enumerate(records)]
    assert all(isinstance(c, Change) for c in changes)
    tables = {c.table for c in changes if isinstance(c, Change)}
    assert "timesheets" in tables and "contracts" in tables and "contract_rates" in tables


def test_bench_core_json_shape() -> None:
    result = CliRunner().invoke(app, ["bench", "core", "--events", "3000", "--json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    passes = {p["pass"]: p for p in data["passes"]}
    assert set(passes) == {
        "decode (ceiling)",
        "decode+billing+memory sink",
        "bytewax flow, 1 worker",
    }
    assert passes["decode (ceiling)"]["ratio_to_decode"] == 1.0
    assert all(p["events"] == 3000 and p["events_per_s"] > 0 for p in passes.values())
    # the flow delivers exactly what the in-process pass delivers to its sink
    assert (
        passes["bytewax flow, 1 worker"]["outputs"]
        == (passes["decode+billing+memory sink"]["outputs"])
    )
    assert data["open_lines"] > 0


def test_bench_state_figures() -> None:
    data = run_state(500)
    assert data["open_lines"] == 500
    assert data["resumed_lines"] == 501  # the resumed engine billed one more line
    assert data["base_bytes"] > 0 and data["resume_s"] > 0
    # an epoch in which one contract changed stores that change, not the state
    assert data["epoch_lines"] > 0
    assert 0 < data["epoch_snapshot_bytes"] < data["base_bytes"] / 5


def test_bench_e2e_is_listed() -> None:
    result = CliRunner().invoke(app, ["bench", "e2e", "--help"])
    assert result.exit_code == 0
    assert "--rate" in result.output and "--seconds" in result.output
    assert "--source" in result.output and "crm" in result.output


def test_bench_e2e_refuses_an_unknown_source() -> None:
    result = CliRunner().invoke(app, ["bench", "e2e", "--source", "erp"])
    assert result.exit_code == 2


def test_history_stream_closes_every_month_before_the_open_ones() -> None:
    events = list(history_stream(600, 200))
    lines = [a for _op, _b, a in events if isinstance(a, Timesheet)]
    closes = [a for _op, _b, a in events if isinstance(a, AccountingPeriod)]
    assert len(lines) == 600
    assert [a.work_date for a in lines] == sorted(a.work_date for a in lines)
    # 200 lines over 12 months: 36 months of history, the first 24 closed, in order
    assert [c.period for c in closes] == [f"{2025 + m // 12}-{m % 12 + 1:02d}" for m in range(24)]
    assert all(c.status == "closed" for c in closes)
    open_lines = [a for a in lines if period_of(a.work_date) > closes[-1].period]
    assert len(open_lines) == 200
    # month m is closed right before the first line of month m + 12 arrives
    for k, (_op, _b, row) in enumerate(events):
        if isinstance(row, AccountingPeriod):
            nxt = next(a for _o, _b2, a in events[k:] if isinstance(a, Timesheet))
            year, month = map(int, row.period.split("-"))
            assert period_of(nxt.work_date) == f"{year + 1}-{month:02d}"


def test_bench_state_history_beside_the_all_open_baseline() -> None:
    result = CliRunner().invoke(app, ["bench", "state", "--lines", "600", "--open", "200",
                                      "--json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    history, baseline = data["worlds"]
    assert (history["open_lines"], history["final_lines"], history["closes"]) == (200, 400, 24)
    assert (baseline["open_lines"], baseline["final_lines"], baseline["closes"]) == (200, 0, 0)
    # the final items' stubs are in segment files written once, not in the per-epoch snapshot
    assert history["segment_files"] == 24 and history["segment_bytes"] > 0
    assert history["base_bytes"] < history["inline_snapshot_bytes"]
    assert baseline["base_bytes"] == baseline["inline_snapshot_bytes"]
    # the resumed process read the segments back and billed one new line
    assert (history["resumed_lines"], history["resumed_finals"]) == (201, 400)
    assert set(data["ratios"]) >= {"rss_mb", "base_bytes", "compaction_s", "resume_s"}
    assert data["ratios"]["base_bytes"] == round(history["base_bytes"] / baseline["base_bytes"], 2)


def test_encoded_closes_decode_from_the_erp_topic() -> None:
    encoder, records = encode_stream(4000, month_events=400, closes=True)
    dec = ChangeDecoder(encoder.schemas)
    closes = [
        c
        for i, r in enumerate(records)
        if r.topic == "erp.public.accounting_periods"
        for c in [dec.decode(r.topic, 0, i, r.key, r.value)]
    ]
    assert closes, "no close in a stream of several simulated months"
    first = closes[0]
    assert isinstance(first, Change) and isinstance(first.after, AccountingPeriod)
    assert (first.after.period, first.after.status) == ("2026-01", "closed")
    assert first.position.source == "erp" and first.after.closed_at is not None
    periods = [c.key for c in closes if isinstance(c, Change)]
    assert periods == sorted(periods) and len(set(periods)) == len(periods)


def test_bench_core_sizes_with_closes() -> None:
    args = ["bench", "core", "--sizes", "4000,6000", "--month-events", "300", "--no-flow"]
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["sizes"] == [4000, 6000]
    small, large = data["runs"]
    assert large["closed_through"] > small["closed_through"]
    assert large["final_lines"] > small["final_lines"] > 0
    assert set(data["cost_ratio"]) == {"decode (ceiling)", "decode+billing+memory sink"}
    assert all(p["us_per_event"] > 0 for p in large["passes"])
    no_closes = CliRunner().invoke(app, [*args, "--no-closes", "--json"])
    assert no_closes.exit_code == 0, no_closes.output
    runs = orjson.loads(no_closes.stdout)["runs"]
    assert all(r["closed_through"] is None and r["final_lines"] == 0 for r in runs)
    assert "erp.public.accounting_periods" not in runs[-1]["events_by_topic"]


def test_bench_core_refuses_a_bad_size() -> None:
    result = CliRunner().invoke(app, ["bench", "core", "--sizes", "20000,lots"])
    assert result.exit_code != 0
    assert "--sizes" in str(result.exception) and "lots" in str(result.exception)


def test_bench_core_sizes_report_the_largest_run_by_window() -> None:
    args = ["bench", "core", "--sizes", "2000,5000", "--window", "2000", "--month-events", "300"]
    result = CliRunner().invoke(app, [*args, "--no-flow", "--json"])
    assert result.exit_code == 0, result.output
    steady = orjson.loads(result.stdout)["largest_windows"]
    assert steady["window"] == 2000
    assert len(steady["decode_us"]) == len(steady["billing_us"]) == 3  # 2000, 2000, 1000
    assert steady["engine_us"] == [
        round(b - d, 2) for d, b in zip(steady["decode_us"], steady["billing_us"], strict=True)
    ]
    assert steady["engine_last_over_second"] == round(
        steady["engine_us"][-1] / steady["engine_us"][1], 3
    )
    table = CliRunner().invoke(app, [*args, "--no-flow"])
    assert table.exit_code == 0, table.output
    assert "4,000-5,000" in table.stdout
