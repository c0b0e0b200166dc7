"""The settings object: frozen, secrets hidden, unknown names refused, clear errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from billsync.errors import ConfigError
from billsync.settings import Settings


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


@pytest.mark.parametrize(
    ("stall_exit_s", "erp_retry_s", "accepted"),
    [
        (None, None, True),  # the defaults: 360 s watchdog, 300 s ERP retry
        (120, None, False),  # the old watchdog would kill a flow waiting out the ERP
        (300, 300, False),  # equal: the watchdog wins the race
        (301, 300, True),
        (30, 20, True),  # a short ERP retry allows a quick watchdog (the e2e harness)
        (0, None, True),  # watchdog off
    ],
)
def test_the_watchdog_outlasts_the_erp_retry(
    stall_exit_s: float | None, erp_retry_s: float | None, accepted: bool
) -> None:
    given = {
        k: v
        for k, v in (("stall_exit_s", stall_exit_s), ("erp_retry_s", erp_retry_s))
        if v is not None
    }
    if accepted:
        s = Settings(**given)  # type: ignore[arg-type]  # test-only passthrough of two floats
        assert not s.stall_exit_s or s.stall_exit_s > s.erp_retry_s
    else:
        with pytest.raises(ConfigError) as refused:
            Settings(**given)  # type: ignore[arg-type]  # test-only passthrough of two floats
        assert "BILLSYNC_STALL_EXIT_S" in str(refused.value)
        assert "BILLSYNC_ERP_RETRY_S" in str(refused.value)


def test_the_environment_is_checked_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLSYNC_STALL_EXIT_S", "120")
    with pytest.raises(ConfigError, match="ERP outage"):
        Settings()
    monkeypatch.setenv("BILLSYNC_ERP_RETRY_S", "60")
    assert Settings().erp_retry_s == 60


@pytest.mark.parametrize(
    ("overrides", "transaction_topics"),
    [
        ({}, ("psa.transaction", "crm.transaction", "erp.transaction")),
        (
            {"source_topics": ("psa_eu.public.timesheets", "crm.crm.contracts"),
             "periods_topic": "erp2.public.accounting_periods"},
            ("psa_eu.transaction", "crm.transaction", "erp2.transaction"),
        ),
    ],
)  # fmt: skip
def test_the_flow_reads_the_transaction_topics_of_its_sources(
    overrides: dict[str, object], transaction_topics: tuple[str, ...]
) -> None:
    """SPEC 4 (transactions applied whole): the BEGIN/END records of every connector the flow
    reads a table of are input too (`billsync run` subscribes, `billsync capture` records)."""
    s = Settings(**overrides)  # type: ignore[arg-type]  # test-only overrides
    assert s.transaction_topics == transaction_topics
    assert s.input_topics == (*s.source_topics, s.periods_topic, *transaction_topics)  # default
    off = Settings(**{**overrides, "transactions": False})  # type: ignore[arg-type]  # test overrides
    assert off.input_topics == (*s.source_topics, s.periods_topic)


def test_compaction_is_fork_or_inline(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().compaction == "fork"
    monkeypatch.setenv("BILLSYNC_COMPACTION", "inline")
    assert Settings().compaction == "inline"
    monkeypatch.setenv("BILLSYNC_COMPACTION", "background")
    with pytest.raises(ValidationError, match="'fork' or 'inline'"):
        Settings()
