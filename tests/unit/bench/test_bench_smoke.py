"""Each bench runs at a tiny size and prints figures of the documented shape (no timing)."""

from __future__ import annotations

import orjson
from typer.testing import CliRunner

from dataflows.cdc.change import Change
from dataflows.cdc.decoder import ChangeDecoder
from ops.bench.core import encode_stream
from ops.bench.state import run_state
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
    assert data["snapshot_bytes"] > 0 and data["resume_s"] > 0


def test_bench_e2e_is_listed() -> None:
    result = CliRunner().invoke(app, ["bench", "e2e", "--help"])
    assert result.exit_code == 0
    assert "--rate" in result.output and "--seconds" in result.output
