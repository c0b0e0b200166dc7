"""``billsync recon``: reconciliation for finance and analysts."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from prometheus_client import Gauge
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from dataflows.billing.batch import compute_targets
from dataflows.billing.mappings import load_mappings
from ops.console import console, emit_json, emit_table
from ops.runner import erp_engine
from ops.settings import get_settings
from ops.sourcedb.engines import crm_engine, psa_engine
from sinks.audit.compare import compare
from sinks.audit.sources import read_world

app = typer.Typer(help="Reconciliation: audit the ERP against the sources, report figures.")

DRIFT = Gauge("billsync_recon_audit_drift", "Differences found by the last recon audit")

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


@app.command()
def audit(
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="rows to print at most")] = 50,
) -> None:
    """Recompute the target state in batch from the source databases and compare it with
    billing_line_state, the ledger sums and invoice_schedule. Exit 1 on any difference."""
    settings = get_settings()
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task("reading PSA and CRM")
        world = read_world(psa_engine(settings), crm_engine(settings))
        progress.update(task, description="computing the target state")
        lines, schedule = compute_targets(world, load_mappings(settings.reference_dir))
        progress.update(task, description="comparing with the ERP")
        with erp_engine(settings.require("erp_db_url")).connect() as conn:
            diffs = compare(conn, lines, schedule)
    DRIFT.set(len(diffs))
    if as_json:
        emit_json(
            {
                "lines": len(lines),
                "schedule": len(schedule),
                "differences": [asdict(d) for d in diffs],
            }
        )
    elif diffs:
        emit_table(
            (asdict(d) for d in diffs[:limit]),
            ("table", "key", "field", "expected", "actual"),
            title=f"{len(diffs)} difference(s)",
        )
    else:
        console.print(
            f"[green]clean[/]: {len(lines)} line states, their ledger sums and "
            f"{len(schedule)} invoice-schedule lines equal the target state"
        )
    if diffs:
        raise typer.Exit(1)
