"""``billsync bench``: figures, not timed tests (see BENCHMARKS.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import Progress

from dataflows.errors import ConfigError
from ops.console import console, emit_json, emit_table
from ops.settings import get_settings

app = typer.Typer(
    help="Benchmarks: core throughput, state size and resume, live latency, ERP batch time."
)

JSON = Annotated[bool, typer.Option("--json", help="print figures as JSON")]


def _say(as_json: bool) -> Any:
    return (lambda _m: None) if as_json else (lambda m: console.print(f"[dim]{m}[/]"))


@app.command("core")
def core(
    events: Annotated[int, typer.Option("--events", "-n", min=100)] = 100_000,
    seed: Annotated[int, typer.Option(help="seed of the synthetic stream")] = 7,
    flow: Annotated[bool, typer.Option(help="also run the Bytewax flow pass")] = True,
    as_json: JSON = False,
) -> None:
    """Synthetic Debezium Avro events: decode+billing vs the decode-only ceiling."""
    from ops.bench.core import run_core

    result = run_core(events, seed=seed, flow=flow, say=_say(as_json))
    if as_json:
        emit_json(result)
        return
    cols = ["pass", "events", "seconds", "events_per_s", "ratio_to_decode", "outputs"]
    emit_table(result["passes"], cols, title=f"bench core: {result['events']} events")


@app.command("state")
def state(
    lines: Annotated[int, typer.Option("--lines", "-n", min=100)] = 100_000,
    as_json: JSON = False,
) -> None:
    """RSS, snapshot size, pickle/unpickle and resume time of an engine with N open lines."""
    from ops.bench.state import run_state

    if as_json:
        result = run_state(lines)
        emit_json(result)
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("building the engine", total=lines)
        result = run_state(lines, lambda k: bar.advance(task, k))
    rows = [{"figure": k, "value": v} for k, v in result.items() if k != "targets"]
    emit_table(rows, ["figure", "value"], title=f"bench state: {lines} lines")


@app.command("e2e")
def e2e(
    rate: Annotated[int, typer.Option("--rate", "-r", min=1, help="approvals per second")] = 200,
    seconds: Annotated[float, typer.Option("--seconds", "-s", min=1)] = 20,
    keep: Annotated[bool, typer.Option(help="keep the inserted timesheets")] = False,
    as_json: JSON = False,
) -> None:
    """Approvals into the live PSA; commit-to-ERP latency. Needs `billsync run` running."""
    from ops.bench.e2e import run_e2e

    result = run_e2e(get_settings(), rate, seconds, keep=keep, say=_say(as_json))
    if as_json:
        emit_json(result)
        return
    rows = [{"figure": k, "value": v} for k, v in result.items() if k != "targets"]
    emit_table(rows, ["figure", "value"], title=f"bench e2e: {rate}/s for {seconds}s")


@app.command("writer")
def writer(
    small: Annotated[int, typer.Option(min=2, help="ledger rows of the small ERP")] = 10_000,
    large: Annotated[int, typer.Option(min=2, help="ledger rows of the large ERP")] = 5_000_000,
    batch: Annotated[int, typer.Option(min=2, help="emissions per timed batch")] = 500,
    repeat: Annotated[int, typer.Option(min=1, help="timed batches per size")] = 5,
    on_erp: Annotated[
        bool,
        typer.Option(
            "--on-erp",
            help="use the PostgreSQL database of ERP_DB_URL (a throwaway schema) "
            "instead of SQLite in a temporary directory",
        ),
    ] = False,
    as_json: JSON = False,
) -> None:
    """ERP batch time with a small and a large ledger, and their ratio (target: <= 1.5)."""
    from ops.bench.writer import run_writer

    pg_url = None
    if on_erp:
        pg_url = get_settings().require("erp_db_url")
        if not pg_url.startswith("postgresql"):
            raise ConfigError(
                "--on-erp needs a PostgreSQL ERP",
                field="ERP_DB_URL",
                fix="point ERP_DB_URL at PostgreSQL, or leave --on-erp out (SQLite)",
            )
    if as_json:
        emit_json(run_writer(small, large, batch=batch, repeat=repeat, pg_url=pg_url))
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("loading ledgers", total=small + large)
        result = run_writer(
            small,
            large,
            batch=batch,
            repeat=repeat,
            pg_url=pg_url,
            say=_say(as_json),
            progress=lambda n: bar.advance(task, n),
        )
    cols = ["ledger_rows", "batch", "batches", "median_ms", "max_ms", "load_s"]
    verdict = "within" if result["within_target"] else "OVER"
    emit_table(
        result["sizes"],
        cols,
        title=f"bench writer ({result['database']}): ratio {result['ratio']} "
        f"({verdict} target {result['target_ratio']})",
    )
