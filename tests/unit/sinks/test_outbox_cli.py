"""``billsync outbox quarantine``: the quarantined records, as a table and as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from billsync.settings import get_settings
from ops.cli import app as billsync
from sinks.erp import tables as t
from sinks.kafka.quarantine import quarantine

NOW = datetime(2025, 4, 1, tzinfo=UTC)


@pytest.fixture
def erp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    monkeypatch.setenv("ERP_DB_URL", url)
    monkeypatch.setenv("BILLSYNC_STACK_DIR", str(tmp_path / "no-stack"))
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def _quarantine_two(url: str) -> None:
    engine = create_engine(url)
    t.metadata.create_all(engine)
    with engine.begin() as conn:
        row = {"key": b"timesheet|7", "payload": '{"amount":"0.105"}', "created_at": NOW}
        quarantine(
            conn,
            [{**row, "id": 41, "topic": "billing.transactions", "error": "x" * 300}],
            stage="relay",
            now=NOW,
        )
        quarantine(
            conn,
            [{**row, "key": None, "topic": "billing.dlq", "error": "partition is None"}],
            stage="enqueue",
            now=NOW,
        )
    engine.dispose()


def test_json_lists_every_quarantined_record_with_its_payload(erp: str) -> None:
    _quarantine_two(erp)
    result = CliRunner().invoke(billsync, ["outbox", "quarantine", "--json"])
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.output)
    assert first["stage"] == "relay" and first["outbox_id"] == 41
    assert first["key"] == "timesheet|7" and first["error"] == "x" * 300
    assert first["payload"] == '{"amount":"0.105"}'
    assert (second["stage"], second["outbox_id"], second["topic"]) == (
        "enqueue",
        None,
        "billing.dlq",
    )


def test_table_filters_by_topic(erp: str) -> None:
    _quarantine_two(erp)
    result = CliRunner().invoke(billsync, ["outbox", "quarantine", "--topic", "billing.dlq"])
    assert result.exit_code == 0, result.output
    assert "1 quarantined outbox record(s)" in result.output
    assert "enqueue" in result.output and "relay" not in result.output  # narrow: words wrap


def test_an_erp_without_the_table_has_nothing_quarantined(erp: str) -> None:
    result = CliRunner().invoke(billsync, ["outbox", "quarantine", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == []
