"""``billsync recon``: reconciliation for finance and analysts.

- ``audit``: recompute the target state in batch from the sources and compare it with the ERP,
  and check that the ledger's source positions never go backwards per item and source
  (:mod:`ops.reads.audit.positions`); its result is kept in ``recon_audit_runs`` (the flow's
  /metrics and the dashboard show the last drift).
- ``tail``: the live latest-per-key table of the ``recon.snapshots`` topic.
- ``report``: figures per (project, period) from the ERP table ``recon_snapshots`` (or
  recomputed from the line states and the ledger with ``--live``), as a table or CSV.
"""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.live import Live
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from billsync.settings import get_settings
from connectors.engines import crm_engine, psa_engine
from dataflows.billing.batch import compute_targets
from dataflows.billing.mappings import load_mappings
from ops.console import JsonOpt, console, emit_json, emit_table
from ops.reads.audit import positions
from ops.reads.audit.compare import compare, read_finals
from ops.reads.audit.sources import read_world
from ops.reads.queries import audit_runs, figures
from ops.reads.queries.parquet import write_figures
from ops.reads.queries.tables import ensure
from ops.reads.topics import TopicReader
from ops.run.runner import erp_engine
from sinks.erp.migrate import upgrade
from sinks.erp.records import RECON_TOPIC

app = typer.Typer(help="Reconciliation: audit the ERP against the sources, report figures.")


TAIL_COLUMNS = (
    "project_id",
    "period",
    "approved_hours",
    "billable_hours",
    "covered_hours",
    "billed_amount",
    "tax_amount",
    "held_amount",
    "held_count",
    "exception_count",
    "ledger_entries",
    "as_of",
)


@app.command()
def audit(
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option(help="rows to print at most")] = 50,
) -> None:
    """Recompute the target state in batch from the source databases and compare it with
    billing_line_state, the ledger sums and invoice_schedule; check that, per item and
    source, the ledger's source positions never go backwards in the source's commit order.
    Exit 1 on any difference or position going backwards."""
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
        erp = erp_engine(settings.require("erp_db_url"))
        upgrade(erp)  # an ERP from before closed periods has no `final` column yet
        with erp.connect() as conn:
            finals = read_finals(conn)  # SPEC 2b: the ERP's record of final items
            lines, schedule = compute_targets(world, load_mappings(settings.reference_dir), finals)
            progress.update(task, description="comparing with the ERP")
            diffs = compare(conn, lines, schedule, finals)
            progress.update(task, description="checking the ledger's source positions")
            regressions = positions.check(conn)
        ensure(erp)
        with erp.begin() as conn:
            run = audit_runs.AuditRun(datetime.now(UTC), len(lines), len(schedule), len(diffs))
            audit_runs.record(conn, run)
    if as_json:
        emit_json(
            {
                "lines": len(lines),
                "final_lines": len(finals),
                "schedule": len(schedule),
                "differences": [asdict(d) for d in diffs],
                "position_regressions": [asdict(r) for r in regressions],
            }
        )
    elif diffs or regressions:
        if diffs:
            emit_table(
                (asdict(d) for d in diffs[:limit]),
                ("table", "key", "field", "expected", "actual"),
                title=f"{len(diffs)} difference(s)",
            )
        if regressions:
            emit_table(
                (asdict(r) for r in regressions[:limit]),
                ("item", "source", "previous_seq", "previous", "seq", "position"),
                title=f"{len(regressions)} ledger entr(y/ies) behind an earlier entry's "
                "source position (applied out of commit order)",
            )
    else:
        console.print(
            f"[green]clean[/]: {len(lines)} open line states, their ledger sums and "
            f"{len(schedule)} invoice-schedule lines equal the target state; "
            f"{len(finals)} final lines equal their frozen values; no ledger entry's "
            "source position goes backwards"
        )
    if diffs or regressions:
        raise typer.Exit(1)


def _apply(latest: dict[str, dict[str, Any]], key: Any, value: Any, project: str | None) -> None:
    """Latest value per key; a tombstone (None) removes the key."""
    if value is None:
        latest.pop(str(key), None)
    elif project is None or value.get("project_id") == project:
        latest[str(key)] = value


def _sorted(latest: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [latest[k] for k in sorted(latest, key=lambda k: tuple(reversed(k.split("|"))))]


def _live_table(latest: dict[str, dict[str, Any]], topic: str, limit: int) -> Table:
    rows = _sorted(latest)
    table = Table(
        title=f"{topic}: {len(rows)} key(s), newest period last"
        + (f" (last {limit} shown)" if len(rows) > limit else ""),
        header_style="bold",
    )
    for c in TAIL_COLUMNS:
        table.add_column(c, justify="left" if c in ("project_id", "period", "as_of") else "right")
    for r in rows[-limit:]:
        table.add_row(*("" if r.get(c) is None else str(r.get(c)) for c in TAIL_COLUMNS))
    return table


@app.command()
def tail(
    project: Annotated[str | None, typer.Option(help="only this project")] = None,
    once: Annotated[
        bool, typer.Option("--once", help="print the current latest-per-key table and exit")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable (implies --once)")] = (
        False
    ),
    rows: Annotated[int, typer.Option(help="rows shown in the live table")] = 40,
    topic: Annotated[str, typer.Option(help="topic to read")] = RECON_TOPIC,
) -> None:
    """Live table of the recon.snapshots topic: the latest figures per (project, period)."""
    settings = get_settings()
    latest: dict[str, dict[str, Any]] = {}
    with TopicReader(settings.kafka_bootstrap, settings.schema_registry_url, topic) as reader:
        if once or as_json:
            for rec in reader.read_to_end():
                _apply(latest, rec.key, rec.value, project)
            emit_table(_sorted(latest), TAIL_COLUMNS, title=topic, as_json=as_json)
            return
        with Live(_live_table(latest, topic, rows), console=console, refresh_per_second=2) as live:
            try:
                while True:
                    batch = reader.poll(0.5)
                    for rec in batch:
                        _apply(latest, rec.key, rec.value, project)
                    if batch:
                        live.update(_live_table(latest, topic, rows))
                    else:
                        time.sleep(0.1)
            except KeyboardInterrupt:
                pass


class Format(StrEnum):
    table = "table"
    csv = "csv"
    parquet = "parquet"


@app.command()
def report(
    period: Annotated[str | None, typer.Option(help="YYYY-MM; default: every period")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="table, csv or parquet")] = Format.table,
    output: Annotated[Path | None, typer.Option(help="write to this file (default stdout)")] = None,
    live: Annotated[
        bool,
        typer.Option(
            "--live", help="recompute from billing_line_state and the ledger, not recon_snapshots"
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Figures per (project, period) from the ERP, with per-period totals."""
    if output is not None and fmt is Format.table:
        raise typer.BadParameter(
            "--output writes a file: add --format csv or parquet", param_hint="--output"
        )
    if fmt is Format.parquet and output is None:
        raise typer.BadParameter("--format parquet needs --output FILE", param_hint="--output")
    settings = get_settings()
    with erp_engine(settings.require("erp_db_url")).connect() as conn:
        rows = figures.recomputed(conn, period) if live else figures.snapshot_rows(conn, period)
    columns = figures.COLUMNS + (() if live else ("as_of", "source_position"))
    if as_json:
        emit_json({"rows": rows, "periods": [asdict(p) for p in figures.by_period(rows)]})
        return
    if fmt is Format.parquet:
        assert output is not None  # checked above
        write_figures(output, rows, columns)
        console.print(f"{len(rows)} row(s) written to {output}")
        return
    if fmt is Format.csv:
        if output is None:
            _csv(sys.stdout, rows, columns)
        else:
            with output.open("w", newline="", encoding="utf-8") as fh:
                _csv(fh, rows, columns)
            console.print(f"{len(rows)} row(s) written to {output}")
        return
    source = "live" if live else "recon_snapshots"
    emit_table(rows, figures.COLUMNS, title=f"recon figures ({source})")
    totals = [asdict(p) for p in figures.by_period(rows)]
    emit_table(
        totals,
        ("period", "billed_amount", "tax_amount", "held_amount", "held_count", "exception_count"),
        title="per period",
    )


def _csv(fh: IO[str], rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    writer = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for r in rows:
        writer.writerow({c: "" if r.get(c) is None else r.get(c) for c in columns})
