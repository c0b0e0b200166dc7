"""``billsync recon audit`` reports ledger positions going backwards and exits 1 on them.

The source databases are replaced by an empty world (the sources' reading has its own tests,
:mod:`tests.unit.sinks.test_audit_sources`); the ERP is SQLite, written by the real writer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from billsync.settings import get_settings
from dataflows.billing.batch import World
from ops.cli import app as billsync
from ops.commands import recon
from sinks.erp.writer import ErpWriter

from .test_erp_writer import em, target

NOW = datetime(2026, 4, 1, tzinfo=UTC)


@pytest.fixture
def erp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ErpWriter]:
    url = f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    monkeypatch.setenv("ERP_DB_URL", url)
    monkeypatch.setenv("BILLSYNC_STACK_DIR", str(tmp_path / "no-stack"))
    monkeypatch.setattr(recon, "psa_engine", lambda _s: None)
    monkeypatch.setattr(recon, "crm_engine", lambda _s: None)
    monkeypatch.setattr(recon, "read_world", lambda _p, _c: World.of([]))
    get_settings.cache_clear()
    engine = create_engine(url)
    writer = ErpWriter(engine, clock=lambda: NOW)
    writer.ensure_schema()
    yield writer
    engine.dispose()
    get_settings.cache_clear()


def test_a_ledger_in_commit_order_is_clean(erp: ErpWriter) -> None:
    erp.apply([em(target("960.00"), "psa:lsn=200:tx=2:commit=200")])
    erp.apply([em(None, "psa:lsn=300:tx=3:commit=300")])  # reversed: nets to 0, no line state
    result = CliRunner().invoke(billsync, ["recon", "audit", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["position_regressions"] == []


def test_positions_going_backwards_fail_the_audit(erp: ErpWriter) -> None:
    erp.apply([em(target("960.00"), "psa:lsn=300:tx=3:commit=300")])
    erp.apply([em(target("480.00"), "psa:lsn=200:tx=2:commit=200")])  # older, applied later
    # the sums end right: only the order is wrong
    erp.apply([em(None, "psa:lsn=400:tx=4:commit=400")])
    result = CliRunner().invoke(billsync, ["recon", "audit", "--json"])
    assert result.exit_code == 1, result.output
    out = json.loads(result.output)
    assert out["differences"] == []
    assert out["position_regressions"] == [
        {
            "item": "timesheet:7",
            "source": "psa",
            "previous_seq": 0,
            "previous": "psa:lsn=300:tx=3:commit=300",
            "seq": 1,
            "position": "psa:lsn=200:tx=2:commit=200",
        }
    ]
    table = CliRunner().invoke(billsync, ["recon", "audit"])
    assert table.exit_code == 1
    assert "1 ledger entr(y/ies) behind an earlier entry's source position" in table.output
