"""``billsync periods``: finance's period calendar (SPEC 2b, section 5).

- ``list``: every period with billing items or a calendar row: status, who closed it and
  when, the last reopen, items, final items, items a close would carry forward, billed.
- ``close YYYY-MM [--force] [--by NAME]``: shows what would carry forward (items held or in
  exception, with amounts) and refuses without ``--force`` while there are any; refuses
  always while an earlier period with billing items is open or the period is closed.
  Returns once the close is recorded in the ERP: the flow applies it when it reaches it in
  the stream (``erp`` connector).
- ``reopen YYYY-MM --reason TEXT [--wait S]``: only the latest closed period. Records the
  reopen, waits until the flow has applied it (the ERP no longer marks the period's items
  final), then asks the PSA connector for an incremental snapshot of those items' rows, so
  the flow re-evaluates them (``connectors/resnapshot.py``).
- ``resnapshot YYYY-MM [--from YYYY-MM]``: that snapshot alone, for a reopen whose wait ran
  out (the flow was down) or was skipped with ``--wait 0``.

Exit codes: 0 done; 1 refused by a rule or not completed (the message says which and what
to do); 2 bad input (a malformed period: typer's usage error).
"""

from __future__ import annotations

import os
import pwd
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import Engine

from billsync.settings import get_settings
from connectors import resnapshot
from connectors.engines import psa_engine, reachable
from ops.console import JsonOpt, console, emit_json, emit_table, err_console
from ops.run.runner import erp_engine
from sinks.erp import periods as p
from sinks.erp.migrate import upgrade

app = typer.Typer(help="Accounting periods: list, close in order, reopen with a reason.")

LIST_COLUMNS = (
    "period",
    "status",
    "items",
    "final_items",
    "carry_items",
    "ledger_entries",
    "billed",
    "closed_at",
    "closed_by",
    "reopened_at",
    "reopen_reason",
)
CARRY_COLUMNS = (
    "source_type",
    "source_id",
    "state",
    "reason",
    "project_id",
    "contract_id",
    "period",
    "billable_amount",
    "held_amount",
    "currency",
)
POLL_S = 1.0


def _period(value: str) -> str:
    if not p.valid_period(value):
        raise typer.BadParameter(f"{value!r} is not a period: write YYYY-MM, e.g. 2026-01")
    return value


PeriodArg = Annotated[str, typer.Argument(help="the period, YYYY-MM", callback=_period)]


def _erp() -> Engine:
    engine = erp_engine(get_settings().require("erp_db_url"))
    with reachable("erp"):
        upgrade(engine)  # an ERP database from before closed periods gains their table/columns
    return engine


def _os_user() -> str:
    """The login name of the process (from the password database, not the environment)."""
    return pwd.getpwuid(os.getuid()).pw_name


def _money(by_currency: dict[str, Any]) -> str:
    return ", ".join(f"{c} {a}".strip() for c, a in sorted(by_currency.items()))


def _refused(reasons: tuple[str, ...], data: dict[str, Any] | None, as_json: bool) -> None:
    if as_json and data is not None:
        emit_json(data)
    for reason in reasons:
        err_console.print(f"[bold red]refused:[/] {reason}")
    raise typer.Exit(1)


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Every period with billing items or a calendar row, oldest first (no row = open)."""
    with reachable("erp"), _erp().connect() as conn:
        rows = [s.as_row() for s in p.list_periods(conn)]
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        row["billed"] = _money(row["billed"])
    emit_table(rows, LIST_COLUMNS, title=f"{len(rows)} period(s)")


def _show_plan(plan: p.ClosePlan) -> None:
    emit_table(
        [c.as_row() for c in plan.carry],
        CARRY_COLUMNS,
        title=f"{len(plan.carry)} item(s) would be carried forward (held or in exception)",
    )
    for currency, sums in sorted(plan.carried_totals().items()):
        console.print(
            f"  carried {currency}: billable {sums['billable_amount']}, held {sums['held_amount']}"
        )
    console.print(f"  {plan.finalising} item(s) of {plan.period} or before would become final")


@app.command()
def close(
    period: PeriodArg,
    force: Annotated[
        bool, typer.Option("--force", help="close although items would be carried forward")
    ] = False,
    by: Annotated[
        str | None, typer.Option("--by", help="who closes it (default: the OS user)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Close a period: its billed, partially held and non-billable items (and those of
    earlier periods) become final; held and exception items are carried forward."""
    who = by if by is not None else _os_user()
    now = datetime.now(UTC)
    with reachable("erp"), _erp().begin() as conn:
        plan = p.plan_close(conn, period)
        if not as_json:
            _show_plan(plan)
        blocked = plan.blocked(force)
        if blocked:
            _refused(blocked, plan.as_dict(force), as_json)
        try:
            p.close(conn, period, who, force=force, now=now)
        except p.PeriodRefused as exc:  # the calendar changed since the plan was read
            _refused(exc.reasons, {**plan.as_dict(force), "refused": list(exc.reasons)}, as_json)
    if as_json:
        emit_json({**plan.as_dict(force), "status": p.CLOSED, "closed_at": now, "closed_by": who})
        return
    console.print(
        f"[green]{period} closed[/] by {who} at {now.isoformat(timespec='seconds')}: recorded "
        "in the ERP; the flow applies it when it reaches it in the stream"
    )


def _wait_applied(engine: Engine, period: str, wait_s: float) -> bool:
    """Whether the flow applied the reopen within ``wait_s`` (no item still final by it)."""
    deadline = time.monotonic() + wait_s
    while True:
        with engine.connect() as conn:
            if p.still_final(conn, period) == 0:
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)


def _send(period: str, items: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    rows = resnapshot.signal_rows(period, items, resnapshot.new_token())
    with reachable("psa"):
        resnapshot.send(psa_engine(get_settings()), rows)
    return rows


def _windows(period: str, items: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"table": w.table, "filter": w.filter} for w in resnapshot.windows(period, items)]


@app.command()
def reopen(
    period: PeriodArg,
    reason: Annotated[str, typer.Option("--reason", help="why (kept with the period)")] = "",
    wait: Annotated[
        float,
        typer.Option(
            min=0,
            help="seconds to wait for the flow to apply the reopen before the re-snapshot "
            "(0: do not wait and do not re-snapshot; run `periods resnapshot` later)",
        ),
    ] = 120.0,
    as_json: JsonOpt = False,
) -> None:
    """Reopen the latest closed period: its final items are re-evaluated against the current
    sources (their rows are re-snapshotted once the flow has applied the reopen)."""
    now = datetime.now(UTC)
    engine = _erp()
    with reachable("erp"), engine.begin() as conn:
        try:
            done = p.reopen(conn, period, reason, now=now)
        except p.PeriodRefused as exc:
            _refused(exc.reasons, {"period": period, "refused": list(exc.reasons)}, as_json)
    out: dict[str, Any] = {
        "period": period,
        "status": p.OPEN,
        "reopened_at": now,
        "reopen_reason": reason.strip(),
        "final_item_periods": [list(i) for i in done.final_items],
        "windows": _windows(period, done.final_items),
        "signals": [],
    }
    if not done.final_items:
        out["resnapshot"] = "not needed"
        note = "no item of it is final in the ERP: nothing to re-snapshot"
    elif wait == 0:
        out["resnapshot"] = "skipped"
        note = (
            f"re-snapshot skipped: run `billsync periods resnapshot {period}` once the flow "
            "has applied the reopen"
        )
    elif not _wait_applied(engine, period, wait):
        out["resnapshot"] = "pending"
        if as_json:
            emit_json(out)
        err_console.print(
            f"[bold red]not completed:[/] the reopen of {period} is recorded, but the flow has "
            f"not applied it within {wait:.0f}s (is `billsync run` running?); its final items "
            f"are not re-snapshotted yet: run `billsync periods resnapshot {period}` once it has"
        )
        raise typer.Exit(1)
    else:
        out["signals"] = [r["id"] for r in _send(period, done.final_items)]
        out["resnapshot"] = "sent"
        n = len(out["signals"])
        note = f"re-snapshot of its final items asked of the psa connector ({n} signal(s))"
    if as_json:
        emit_json(out)
        return
    console.print(f"[green]{period} reopened[/] at {now.isoformat(timespec='seconds')}: {note}")


@app.command("resnapshot")
def resnapshot_(
    period: PeriodArg,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from",
            callback=lambda v: v if v is None else _period(v),
            help="re-snapshot timesheets and milestones from this period on, whatever the "
            "ERP records as final (e.g. a reopen recorded before the flow applied the close)",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the psa connector for an incremental snapshot of the rows of the items the close
    of PERIOD made final (the second half of `reopen`); PERIOD must be open."""
    with reachable("erp"), _erp().connect() as conn:
        status = {s.period: s.status for s in p.list_periods(conn)}.get(period, p.OPEN)
        items = p.final_items_of(conn, period)
        pending = p.still_final(conn, period)
    reasons: list[str] = []
    if status == p.CLOSED:
        reasons.append(f"{period} is closed: reopen it first (`billsync periods reopen`)")
    elif pending:
        reasons.append(
            f"the flow has not applied the reopen of {period} yet ({pending} item(s) still "
            "final): a re-snapshot now would be ignored; wait for `billsync run` to catch up"
        )
    if from_ is not None:
        if from_ > period:
            reasons.append(f"--from {from_} is after {period}")
        items = (*items, ("timesheet", from_), ("milestone", from_))
    if reasons:
        _refused(tuple(reasons), {"period": period, "refused": reasons}, as_json)
    rows = _send(period, items) if items else []
    windows = _windows(period, items)
    out = {"period": period, "windows": windows, "signals": [r["id"] for r in rows]}
    if as_json:
        emit_json(out)
        return
    if not rows:
        console.print(f"no item of {period} is recorded final: nothing to re-snapshot")
        return
    emit_table(windows, ("table", "filter"), title=f"re-snapshot of {period} asked")
