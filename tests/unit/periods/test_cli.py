"""`billsync periods` on a SQLite ERP: tables and --json, refusals exit 1, bad input exit 2."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, select, update
from typer.testing import CliRunner

from billsync.settings import get_settings
from connectors.sources import psa_signal
from ops.commands import periods as cmd
from ops.console import console, err_console
from sinks.erp import tables as t
from tests.unit.periods.erp_rows import entry, fill, line


@pytest.fixture
def erp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'erp.db'}"
    monkeypatch.setenv("ERP_DB_URL", url)
    monkeypatch.setenv("BILLSYNC_STACK_DIR", str(tmp_path / "no-stack"))
    get_settings.cache_clear()
    for out in (console, err_console):  # wide enough that no cell is wrapped or cut
        monkeypatch.setattr(out, "width", 250)
    engine = create_engine(url)
    fill(
        engine,
        [
            line("1", "2026-01"),
            line("2", "2026-01", "held", billed="0.00", billable="80.00", reason="PROJECT_ON_HOLD"),
            line("3", "2026-02", source_type="milestone", billed="500.00"),
        ],
        [entry(1, "2026-01")],
    )
    yield engine
    engine.dispose()
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cmd.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def status(engine: Engine, period: str) -> str | None:
    a = t.accounting_periods
    with engine.connect() as conn:
        return conn.execute(select(a.c.status).where(a.c.period == period)).scalar()


def test_list_json_shape(erp: Engine) -> None:
    code, out, _ = run("list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["period"] for r in rows] == ["2026-01", "2026-02"]
    assert rows[0] == {
        "period": "2026-01",
        "status": "open",
        "items": 2,
        "final_items": 0,
        "carry_items": 1,
        "ledger_entries": 1,
        "billed": {"EUR": "100.00"},
        "closed_at": None,
        "closed_by": None,
        "reopened_at": None,
        "reopen_reason": None,
    }


def test_list_table_is_readable(erp: Engine) -> None:
    code, out, _ = run("list")
    assert code == 0
    assert "2026-02" in out and "EUR 500.00" in out


def test_close_shows_the_carry_forward_and_refuses_without_force(erp: Engine) -> None:
    code, out, err = run("close", "2026-01", "--by", "ana")
    assert code == 1
    assert "PROJECT_ON_HOLD" in out and "carried EUR: billable 80.00" in out
    assert "would be carried forward (pass --force" in err
    assert status(erp, "2026-01") is None


def test_close_refusal_json(erp: Engine) -> None:
    code, out, _ = run("close", "2026-01", "--json")
    assert code == 1
    body = json.loads(out)
    assert body["carry_forward"][0]["source_id"] == "2"
    assert body["carry_forward"][0]["billable_amount"] == "80.00"
    assert body["carry_totals"] == {"EUR": {"billable_amount": "80.00", "held_amount": "0.00"}}
    assert len(body["refused"]) == 1 and "carried forward" in body["refused"][0]


def test_close_with_force_records_who_and_when(erp: Engine) -> None:
    code, out, _ = run("close", "2026-01", "--force", "--by", "ana", "--json")
    assert code == 0, out
    body = json.loads(out)
    assert (body["status"], body["closed_by"], body["refused"]) == ("closed", "ana", [])
    assert body["finalising"] == 1
    assert status(erp, "2026-01") == "closed"


def test_close_out_of_order_is_refused_even_with_force(erp: Engine) -> None:
    code, _, err = run("close", "2026-02", "--force", "--by", "ana")
    assert code == 1
    assert "still open: 2026-01" in err
    assert status(erp, "2026-02") is None


def test_close_defaults_to_the_os_user(erp: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cmd, "_os_user", lambda: "finance-bot")
    code, out, _ = run("close", "2026-01", "--force", "--json")
    assert code == 0 and json.loads(out)["closed_by"] == "finance-bot"


@pytest.mark.parametrize(
    "args",
    [
        ("close", "2026-13"),
        ("close", "January"),
        ("reopen", "2026-1", "--reason", "x"),
        ("resnapshot", "2026-01", "--from", "x"),
    ],
)
def test_a_malformed_period_is_bad_input(erp: Engine, args: tuple[str, ...]) -> None:
    code, _, err = run(*args)
    assert code == 2
    assert "is not a period" in err


def _close_both(erp: Engine) -> None:
    assert run("close", "2026-01", "--force", "--by", "ana")[0] == 0
    assert run("close", "2026-02", "--force", "--by", "ana")[0] == 0  # 2 carried again
    # what the flow's writer records at the close of 2026-02 (the milestone became final)
    with erp.begin() as conn:
        conn.execute(
            update(t.billing_line_state)
            .where(t.billing_line_state.c.source_id == "3")
            .values(final=True, final_period="2026-02")
        )


def test_reopen_needs_a_reason_and_the_latest_closed_period(erp: Engine) -> None:
    _close_both(erp)
    code, _, err = run("reopen", "2026-02")
    assert code == 1 and "a reason is required" in err
    code, _, err = run("reopen", "2026-01", "--reason", "credit note")
    assert code == 1 and "that is 2026-02, not 2026-01" in err
    assert status(erp, "2026-02") == "closed"


def test_reopen_without_waiting_records_it_and_skips_the_resnapshot(erp: Engine) -> None:
    _close_both(erp)
    code, out, _ = run("reopen", "2026-02", "--reason", "credit note", "--wait", "0", "--json")
    assert code == 0, out
    body = json.loads(out)
    assert (body["status"], body["resnapshot"], body["signals"]) == ("open", "skipped", [])
    assert body["final_item_periods"] == [["milestone", "2026-02"]]
    assert body["windows"] == [
        {
            "table": "public.milestones",
            "filter": "accepted_at >= '2026-02-01 00:00:00+00' "
            "AND accepted_at < '2026-03-01 00:00:00+00'",
        }
    ]
    assert status(erp, "2026-02") == "open"


def test_reopen_not_applied_by_the_flow_in_time_exits_1(erp: Engine) -> None:
    _close_both(erp)
    code, _, err = run("reopen", "2026-02", "--reason", "credit note", "--wait", "0.01")
    assert code == 1
    assert "billsync periods resnapshot 2026-02" in err
    assert status(erp, "2026-02") == "open"  # the reopen itself is recorded


@pytest.fixture
def psa(monkeypatch: pytest.MonkeyPatch) -> Engine:
    engine = create_engine("sqlite://")
    psa_signal.create(engine)
    monkeypatch.setattr(cmd, "psa_engine", lambda _settings: engine)
    return engine


def test_reopen_applied_by_the_flow_sends_the_signal(
    erp: Engine, psa: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _close_both(erp)

    def flow_applies(_engine: Engine, period: str, _wait: float) -> bool:
        with erp.begin() as conn:  # what the ERP writer does when the flow meets the reopen
            conn.execute(
                update(t.billing_line_state)
                .where(t.billing_line_state.c.final_period == period)
                .values(final=False)
            )
        return True

    monkeypatch.setattr(cmd, "_wait_applied", flow_applies)
    code, out, _ = run("reopen", "2026-02", "--reason", "credit note", "--json")
    assert code == 0, out
    body = json.loads(out)
    assert body["resnapshot"] == "sent"
    with psa.connect() as conn:
        ids = list(conn.execute(select(psa_signal.c.id)).scalars())
    assert ids == body["signals"] and ids[0].startswith("reopen-2026-02-milestones-")


def test_resnapshot_refuses_while_the_flow_has_not_applied_the_reopen(
    erp: Engine, psa: Engine
) -> None:
    _close_both(erp)
    assert run("resnapshot", "2026-02")[0] == 1  # closed
    assert run("reopen", "2026-02", "--reason", "credit note", "--wait", "0")[0] == 0
    code, _, err = run("resnapshot", "2026-02")
    assert code == 1 and "has not applied the reopen" in err
    with erp.begin() as conn:
        conn.execute(update(t.billing_line_state).values(final=False))
    code, out, _ = run("resnapshot", "2026-02", "--from", "2026-01", "--json")
    assert code == 0, out
    assert [w["table"] for w in json.loads(out)["windows"]] == [
        "public.timesheets",
        "public.milestones",
    ]
