"""A capture file replays through the same flow into SQLite: same ERP as a direct run."""

from __future__ import annotations

import gc
import io
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from billsync.errors import ConfigError
from dataflows.capture import CaptureWriter, read_capture
from ops.run.gctune import THRESHOLDS
from ops.run.runner import replay_file
from tests.unit.flow.test_flow import RUNNERS, ledger_sums, run, state_rows, story


def test_capture_round_trip_keeps_bytes_and_schemas(tmp_path: Path) -> None:
    rec, _ = story()
    buf = io.BytesIO()
    writer = CaptureWriter(buf, rec.schemas)
    for m in rec.messages:
        writer.record(m)
    path = tmp_path / "cap.jsonl"
    path.write_bytes(buf.getvalue())
    schemas, records = read_capture(path)
    assert [(m.topic, m.offset, m.key, m.value) for m in records] == [
        (m.topic, m.offset, m.key, m.value) for m in rec.messages
    ]
    for schema_id in rec.ids.values():
        assert schemas.fetch(schema_id) == rec.schemas.fetch(schema_id)


def test_a_file_run_collects_garbage_as_the_flow_does(tmp_path: Path) -> None:
    """``run --from-file`` sets the flow's collector thresholds (ops/run/gctune.py) before it
    builds the flow, as ``billsync run`` does (``serve_flow``)."""
    before = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        replay_file(_capture(tmp_path), f"sqlite:///{tmp_path / 'gc.sqlite3'}")
        assert gc.get_threshold() == THRESHOLDS
    finally:
        gc.set_threshold(*before)


def test_replay_from_file_equals_a_direct_run(tmp_path: Path) -> None:
    rec, _ = story()
    path = tmp_path / "cap.jsonl"
    with path.open("wb") as f:
        writer = CaptureWriter(f, rec.schemas)
        for m in rec.messages:
            writer.record(m)
    url = f"sqlite:///{tmp_path / 'replay.sqlite3'}"
    assert replay_file(path, url) == len(rec.messages)
    direct = run(tmp_path, RUNNERS["one_worker"], "direct")
    replayed = create_engine(url)
    assert state_rows(replayed) == state_rows(direct)
    assert ledger_sums(replayed) == ledger_sums(direct)


def test_a_file_of_another_format_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"kind": "record"}\n')
    with pytest.raises(ConfigError, match="not a billsync capture"):
        read_capture(path)


def _capture(tmp_path: Path) -> Path:
    rec, _ = story()
    path = tmp_path / "cap.jsonl"
    with path.open("wb") as f:
        writer = CaptureWriter(f, rec.schemas)
        for m in rec.messages:
            writer.record(m)
    return path


def test_a_file_run_with_a_recovery_store_resumes_from_it(tmp_path: Path) -> None:
    """Started again with the store of a run that completed, a file run reads nothing more:
    an ERP it had not written stays empty (a batch run would bill the whole file into it)."""
    path, store = _capture(tmp_path), tmp_path / "recovery"
    first, second = (f"sqlite:///{tmp_path / name}.sqlite3" for name in ("first", "second"))
    replay_file(path, first, recovery=store, snapshot_interval=timedelta(milliseconds=50))
    assert ledger_sums(create_engine(first)) == ledger_sums(
        run(tmp_path, RUNNERS["one_worker"], "direct")
    )
    assert (store / "part-0.sqlite3").exists()
    replay_file(path, second, recovery=store)
    assert ledger_sums(create_engine(second)) == {}


def test_a_file_run_refuses_a_missing_store_beside_an_erp_that_billed(tmp_path: Path) -> None:
    path = _capture(tmp_path)
    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    replay_file(path, url)  # a batch run billed into this ERP
    with pytest.raises(ConfigError, match=r"recovery store .* is missing") as refused:
        replay_file(path, url, recovery=tmp_path / "recovery")
    assert refused.value.field == "--recovery-dir"
    assert not (tmp_path / "recovery").exists()
