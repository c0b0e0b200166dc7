"""``billsync exceptions``: the exception queue for finance — what is held, why, since when."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from billsync.settings import get_settings
from connectors.engines import crm_engine, psa_engine
from dataflows.billing.mappings import load_mappings
from dataflows.billing.target import SourceType
from ops.console import JsonOpt, console, emit_json, emit_table
from ops.reads.audit.sources import read_world
from ops.reads.queries import queue
from ops.reads.queries.explain import explain as explain_item
from ops.run.runner import erp_engine

app = typer.Typer(help="The exception queue: current holds and exceptions, and why.")

LIST_COLUMNS = (
    "source_type",
    "source_id",
    "state",
    "reason",
    "contract_id",
    "period",
    "billable_amount",
    "held_amount",
    "currency",
    "age",
    "source_position",
)


@app.command("list")
def list_(
    reason: Annotated[str | None, typer.Option(help="only this reason, e.g. NO_RATE")] = None,
    contract: Annotated[str | None, typer.Option(help="only this contract_id")] = None,
    limit: Annotated[int | None, typer.Option(help="rows at most (oldest first)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Lines held, partially held or in exception, oldest first: age, amounts, reason, cause.

    The amount is billable_amount (what the line would bill) and held_amount (the part the
    cap holds); the cause is the source position of the change that put the line there."""
    settings = get_settings()
    with erp_engine(settings.require("erp_db_url")).connect() as conn:
        lines = queue.queued_lines(
            conn, datetime.now(UTC), reason=reason, contract_id=contract, limit=limit
        )
    rows = [queue.as_row(line) for line in lines]
    emit_table(
        rows,
        (*LIST_COLUMNS, "age_s", "project_id", "updated_at") if as_json else LIST_COLUMNS,
        title=f"{len(rows)} line(s) in the exception queue",
        as_json=as_json,
    )


@app.command()
def explain(
    source_id: Annotated[str, typer.Argument(help="timesheet_id or milestone_id")],
    source_type: Annotated[SourceType, typer.Option("--type")] = SourceType.TIMESHEET,
    as_json: JsonOpt = False,
) -> None:
    """The rule that decides the line from the current PSA/CRM rows, the rows it read, and
    what the ERP holds for it (line state, ledger entries with their source positions)."""
    settings = get_settings()
    world = read_world(psa_engine(settings), crm_engine(settings))
    mappings = load_mappings(settings.reference_dir)
    with erp_engine(settings.require("erp_db_url")).connect() as conn:
        ex = explain_item(world, mappings, source_type, source_id, conn)
    if as_json:
        emit_json(ex.as_dict())
        return
    console.print(f"[bold]{ex.source_type} {ex.source_id}[/]")
    if ex.item is None:
        console.print("  not in the source database (deleted or never written)")
    else:
        console.print(f"  source row: {_brief(asdict(ex.item))}")
    console.print("[bold]decision path[/] (SPEC 2, first rule that fires decides)")
    for step in ex.path:
        console.print(f"  {step}")
    if ex.rows:
        console.print("[bold]rows the rules read[/]")
        for table, row in ex.rows:
            console.print(f"  {table}: {_brief(asdict(row))}")
    console.print("[bold]ERP billing_line_state[/]")
    console.print(f"  {_brief(ex.line_state) if ex.line_state else 'none'}")
    target = ex.as_dict()["target"]
    if ex.line_state is not None and target is not None:
        fields = ("state", "reason", "billed_amount", "held_amount", "tax_amount")
        diff = [f for f in fields if str(ex.line_state.get(f)) != str(target.get(f))]
        if diff:
            console.print(
                f"  [yellow]differs from the current target in {', '.join(diff)}[/] "
                "(the flow has not caught up, or run `billsync recon audit`)"
            )
    emit_table(
        ex.ledger,
        ("seq", "entry_type", "amount", "tax_amount", "period", "source_position", "created_at"),
        title=f"ledger: {len(ex.ledger)} entr{'y' if len(ex.ledger) == 1 else 'ies'}",
    )


def _brief(row: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in row.items() if v is not None and k != "updated_at")
