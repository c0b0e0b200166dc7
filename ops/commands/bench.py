"""``billsync bench``: figures, not timed tests (see BENCHMARKS.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import Progress

from ops.console import console, emit_json, emit_table
from ops.settings import get_settings

app = typer.Typer(help="Benchmarks: core throughput, state size and resume, live latency.")

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
