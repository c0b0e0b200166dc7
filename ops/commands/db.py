"""``billsync db``: the source databases (PSA on PostgreSQL, CRM on MariaDB).

``init`` creates the tables of SPEC section 1 (idempotent) and, when ``ERP_DB_URL`` is set,
the ERP tables with what the ``erp`` connector captures (``accounting_periods``, SPEC 2b);
``seed`` loads deterministic demo data in bulk, ``truncate`` empties the source tables. See
``ops/sourcedb/README.md``.
"""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from billsync.errors import ConfigError
from billsync.settings import Settings, get_settings
from connectors.engines import crm_engine, psa_engine, reachable
from connectors.sources import crm_metadata, erp_capture_metadata, psa_metadata
from ops.console import JsonOpt, emit_json, emit_table, err_console
from ops.run.runner import erp_engine
from ops.sourcedb.generate import build
from ops.sourcedb.install import TableStatus, describe, init_crm, init_erp, init_psa
from ops.sourcedb.load import CRM_ORDER, PSA_ORDER, empty, load_crm, load_psa, non_empty

app = typer.Typer(
    help="Source databases: create the PSA and CRM tables, load demo data, empty them.",
    no_args_is_help=True,
)

STATUS_COLUMNS = ["source", "table", "exists", "rows", "replica_identity"]


def _erp(settings: Settings, *, init: bool) -> list[TableStatus]:
    """The erp connector's tables (and, with ``init``, the ERP schema): [] without ERP_DB_URL."""
    if settings.erp_db_url is None:
        err_console.print("ERP_DB_URL is not set: the ERP tables are left alone")
        return []
    engine = erp_engine(settings.require("erp_db_url"))
    with reachable("erp"):
        if init:
            for note in init_erp(engine):
                err_console.print(f"[yellow]erp:[/] {note}")
        return describe("erp", engine, erp_capture_metadata)


@app.command()
def init(as_json: JsonOpt = False) -> None:
    """Create every source table (PSA and CRM) and Debezium's support tables, and the ERP
    tables with what the erp connector captures (grants, publication); safe to rerun."""
    settings = get_settings()
    psa, crm = psa_engine(settings), crm_engine(settings)
    with reachable("psa"):
        init_psa(psa)
        rows = [s.as_row() for s in describe("psa", psa, psa_metadata)]
    with reachable("crm"):
        init_crm(crm)
        rows += [s.as_row() for s in describe("crm", crm, crm_metadata)]
    rows += [s.as_row() for s in _erp(settings, init=True)]
    emit_table(rows, STATUS_COLUMNS, title="source tables", as_json=as_json)


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """Which source tables exist and how many rows they hold."""
    settings = get_settings()
    with reachable("psa"):
        rows = [s.as_row() for s in describe("psa", psa_engine(settings), psa_metadata)]
    with reachable("crm"):
        rows += [s.as_row() for s in describe("crm", crm_engine(settings), crm_metadata)]
    rows += [s.as_row() for s in _erp(settings, init=False)]
    emit_table(rows, STATUS_COLUMNS, title="source tables", as_json=as_json)


@app.command()
def seed(
    scale: Annotated[float, typer.Option(min=0.01, help="1 ≈ 10k timesheet lines, 100 ≈ 1M")] = 1.0,
    seed: Annotated[int, typer.Option(help="same (scale, seed), same rows")] = 42,
    replace: Annotated[
        bool, typer.Option("--replace", help="truncate the source tables first")
    ] = False,
    batch: Annotated[int, typer.Option(min=100, help="rows per COPY/INSERT batch")] = 20_000,
    as_json: JsonOpt = False,
) -> None:
    """Load deterministic demo data into empty source tables, in bulk, and report rows/s."""
    settings = get_settings()
    psa, crm = psa_engine(settings), crm_engine(settings)
    with reachable("psa"), reachable("crm"):
        if replace:
            empty(psa, crm)
        occupied = non_empty(psa, crm)
    if occupied:
        raise ConfigError(
            f"source tables already hold rows: {', '.join(occupied)}",
            field="--replace",
            fix="pass --replace (or run `billsync db truncate --yes`) to seed from scratch",
        )
    started = time.perf_counter()
    data = build(scale, seed)
    generated = time.perf_counter() - started
    totals = {t: len(rows) for t, rows in data.tables.items()}
    totals["timesheets"] = data.expected_timesheets
    with Progress(
        TextColumn("{task.description:<20}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]:>9} rows/s"),
        TimeElapsedColumn(),
        console=err_console,
        transient=as_json,
    ) as bar:
        tasks = {t: bar.add_task(t, total=totals[t], rate="") for t in (*CRM_ORDER, *PSA_ORDER)}
        begun: dict[str, float] = {}

        def progress(table: str, rows: int) -> None:
            begun.setdefault(table, time.perf_counter())
            task = bar.tasks[tasks[table]]
            done = task.completed + rows
            elapsed = max(time.perf_counter() - begun[table], 1e-6)
            bar.update(tasks[table], completed=done, rate=f"{done / elapsed:,.0f}")
            if done > (task.total or 0):
                bar.update(tasks[table], total=done)

        with reachable("crm"):
            stats = load_crm(crm, data, progress, batch)
        with reachable("psa"):
            stats += load_psa(psa, data, progress, batch)
        for s in stats:
            bar.update(tasks[s.table], total=s.rows, completed=s.rows)
    rows = [s.as_row() for s in stats]
    total_rows = sum(s.rows for s in stats)
    load_s = sum(s.seconds for s in stats)
    summary = {
        "scale": scale,
        "seed": seed,
        "rows": total_rows,
        "load_seconds": round(load_s, 3),
        "rows_per_s": round(total_rows / load_s) if load_s else 0,
        "parents_generated_seconds": round(generated, 3),
        "tables": rows,
    }
    if as_json:
        emit_json(summary)
        return
    rows.append(
        {
            "source": "all",
            "table": "",
            "rows": total_rows,
            "seconds": summary["load_seconds"],
            "rows_per_s": summary["rows_per_s"],
        }
    )
    emit_table(
        rows,
        ["source", "table", "rows", "seconds", "rows_per_s"],
        title=f"seeded scale={scale} seed={seed}",
    )


@app.command()
def truncate(
    yes: Annotated[bool, typer.Option("--yes", help="do not ask for confirmation")] = False,
    delete: Annotated[
        bool,
        typer.Option("--delete", help="DELETE row by row: Debezium emits a delete per row"),
    ] = False,
) -> None:
    """Empty the eight source tables (for tests and the demo); Debezium's tables are kept."""
    if not yes:
        typer.confirm("Remove every row of the PSA and CRM source tables?", abort=True)
    settings = get_settings()
    with reachable("psa"), reachable("crm"):
        empty(psa_engine(settings), crm_engine(settings), row_by_row=delete)
    err_console.print("source tables emptied" + (" (row by row)" if delete else ""))
