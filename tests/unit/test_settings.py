"""The settings object: frozen, secrets hidden, unknown names refused, clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dataflows.errors import ConfigError
from ops.settings import Settings


def test_connection_names_of_the_spec_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PSA_DB_URL", "postgresql+psycopg://u:hunter2@127.0.0.1:5433/psa")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:19092")
    s = Settings()
    assert s.kafka_bootstrap == "127.0.0.1:19092"
    assert s.require("psa_db_url").endswith("/psa")
    assert "hunter2" not in repr(s)
    assert "hunter2" not in str(s.model_dump())


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.kafka_bootstrap = "elsewhere:9092"  # type: ignore[misc]


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(no_such_setting=1)  # type: ignore[call-arg]


def test_missing_connection_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ERP_DB_URL", raising=False)
    with pytest.raises(ConfigError, match=r"ERP_DB_URL.*billsync stack"):
        Settings().require("erp_db_url")
