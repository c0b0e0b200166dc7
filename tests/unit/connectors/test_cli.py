"""`billsync connectors` without services: render and offline validate, tables and --json."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from typer.testing import CliRunner

from billsync.settings import get_settings
from ops.commands.connectors import app


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("PSA_DB_URL", "postgresql://u:secret-pw@db.example:5433/psa")
    monkeypatch.setenv("CRM_DB_URL", "mysql://u:secret-pw@crm.example:3307/crm")
    monkeypatch.setenv("BILLSYNC_STACK_DIR", "/nonexistent-billsync-stack")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_render_json_is_the_connect_config_without_secrets() -> None:
    result = CliRunner().invoke(app, ["render", "psa", "--json"])
    assert result.exit_code == 0, result.output
    config = json.loads(result.output)
    assert config["database.hostname"] == "db.example"
    assert "secret-pw" not in result.output


def test_validate_offline_reports_valid() -> None:
    result = CliRunner().invoke(app, ["validate", "crm", "--offline", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body == {"name": "crm", "valid": True, "connect_checked": False, "violations": []}


def test_unknown_name_is_a_config_error() -> None:
    result = CliRunner().invoke(app, ["render", "nope"])
    assert result.exit_code != 0
    assert "no connector template named 'nope'" in str(result.exception)
