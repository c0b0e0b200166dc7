"""`billsync run` without its recovery store: refused into an ERP that holds postings.

A lost recovery store used to be re-created silently: the flow then started with no state
from the beginning of the topics into an ERP that had billed from the lost state. Now the
store is created only for a first start (no postings) or when the operator says ``--rebuild``.
Real parts: a SQLite ERP with the real tables, Bytewax's own ``init_db_dir``.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import create_engine, insert

from billsync.errors import ConfigError
from billsync.settings import Settings, get_settings
from ops.cli import main
from ops.run.runner import prepare_recovery, recovery_store_exists
from sinks.erp import tables as t


def _erp(tmp_path: Path, *, tables: bool, postings: int) -> str:
    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    engine = create_engine(url)
    if tables:
        t.metadata.create_all(engine)
    with engine.begin() as conn:
        for n in range(postings):
            conn.execute(
                insert(t.erp_billing_transactions),
                {
                    "transaction_id": f"tx-{n}",
                    "source_type": "timesheet",
                    "source_id": str(n),
                    "seq": 0,
                    "amount": Decimal("100.00"),
                    "tax_amount": Decimal("20.00"),
                    "entry_type": "original",
                    "created_at": datetime(2026, 3, 1, tzinfo=UTC),
                },
            )
    engine.dispose()
    return url


def _settings(tmp_path: Path, erp_url: str) -> Settings:
    return Settings(
        erp_db_url=SecretStr(erp_url),
        recovery_dir=tmp_path / "recovery",
        recovery_partitions=1,
        stack_dir=tmp_path,
    )


@pytest.mark.parametrize(
    ("tables", "postings", "rebuild", "starts"),
    [
        (False, 0, False, True),  # a first start: no ERP tables yet
        (True, 0, False, True),  # tables, no posting yet
        (True, 1, False, False),  # the ERP billed from a state that is gone: refused
        (True, 1, True, True),  # the operator asked for a rebuild
    ],
)
def test_a_missing_store_is_created_only_when_nothing_was_billed_or_a_rebuild_is_asked(
    tmp_path: Path, tables: bool, postings: int, rebuild: bool, starts: bool
) -> None:
    settings = _settings(tmp_path, _erp(tmp_path, tables=tables, postings=postings))
    if starts:
        prepare_recovery(settings, rebuild=rebuild)
    else:
        with pytest.raises(ConfigError, match=r"recovery store .* is missing") as refused:
            prepare_recovery(settings, rebuild=rebuild)
        assert "--rebuild" in str(refused.value)
        assert "BILLSYNC_RECOVERY_DIR" in str(refused.value)
    assert recovery_store_exists(tmp_path / "recovery") is starts


def test_an_existing_store_is_used_without_asking_the_erp(tmp_path: Path) -> None:
    settings = _settings(tmp_path, _erp(tmp_path, tables=True, postings=1))
    prepare_recovery(settings, rebuild=True)
    unreachable = _settings(tmp_path, "postgresql+psycopg://nobody@127.0.0.1:1/erp")
    prepare_recovery(unreachable)  # the store is there: the ERP is not consulted
    assert recovery_store_exists(tmp_path / "recovery")


def test_billsync_run_refuses_with_the_rebuild_instructions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The command itself: exit 1 and the message, before Kafka or Bytewax is touched."""
    monkeypatch.setenv("ERP_DB_URL", _erp(tmp_path, tables=True, postings=1))
    monkeypatch.setenv("BILLSYNC_RECOVERY_DIR", str(tmp_path / "recovery"))
    monkeypatch.setenv("BILLSYNC_STACK_DIR", str(tmp_path))
    monkeypatch.setenv("BILLSYNC_METRICS_PORT", "0")
    monkeypatch.setenv("KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setattr(sys, "argv", ["billsync", "run"])
    get_settings.cache_clear()
    try:
        with pytest.raises(SystemExit) as exited:
            main()
    finally:
        get_settings.cache_clear()
    assert exited.value.code == 1
    said = " ".join(capsys.readouterr().err.split())
    assert "is missing while the ERP already holds postings" in said
    assert "billsync run --rebuild" in said
    assert not (tmp_path / "recovery").exists()
