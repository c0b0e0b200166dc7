"""A capture file replays through the same flow into SQLite: same ERP as a direct run."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from dataflows.capture import CaptureWriter, read_capture
from dataflows.errors import ConfigError
from ops.runner import replay_file
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
