"""``billsync demo``: the whole pipeline on the local stack, then a live billing story."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Annotated

import typer

from billsync.errors import StackError
from billsync.settings import get_settings
from connectors.engines import crm_engine, psa_engine
from ops.console import console
from ops.demo import flowproc
from ops.demo.story import Demo, new_tag
from ops.run.runner import erp_engine

app = typer.Typer(help="The demo: stack, sources, connectors, the flow and a live story.")


def _cli(*args: str, capture: bool = False) -> str:
    """Run a billsync sub-command in a child process (its own progress output shows)."""
    console.print(f"[bold cyan]$ billsync {' '.join(args)}")
    proc = subprocess.run(  # noqa: S603  # our own CLI with fixed arguments
        [sys.executable, "-m", "ops.cli", *args],
        check=False,
        text=True,
        capture_output=capture,
    )
    if proc.returncode != 0:
        raise StackError(f"billsync {' '.join(args)}", f"exited with {proc.returncode}", None)
    return proc.stdout or ""


def _source_rows() -> int:
    status = json.loads(_cli("db", "status", "--json", capture=True))
    return sum(r["rows"] or 0 for r in status if r["table"] == "timesheets")


def _wait_caught_up(timeout_s: float = 600.0) -> None:
    """Wait until `recon audit` is clean: the flow has billed the whole seed."""
    console.print("[bold cyan]waiting for the flow to catch up (recon audit clean)…")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        proc = subprocess.run(  # our own CLI with fixed arguments
            [sys.executable, "-m", "ops.cli", "recon", "audit", "--json"],
            check=False,
            capture_output=True,
            text=True,
        )
        if proc.returncode == 0:
            console.print("[green]caught up:[/] recon audit is clean")
            return
        time.sleep(5)
    raise StackError("flow", f"not caught up after {timeout_s:.0f}s", None)


@app.callback(invoke_without_command=True)
def demo(
    ctx: typer.Context,
    scale: Annotated[int, typer.Option(help="seed scale (1 ≈ 10k timesheet lines)")] = 1,
) -> None:
    """Bring everything up and play the story. Idempotent: rerun it any time."""
    if ctx.invoked_subcommand is not None:
        return
    settings = get_settings()
    _cli("stack", "up")
    get_settings.cache_clear()  # stack.env was (re)written by `stack up`
    settings = get_settings()
    _cli("db", "init")
    if _source_rows() == 0:
        _cli("db", "seed", "--scale", str(scale))
    _cli("schemas", "register")
    _cli("connectors", "register", "psa")
    _cli("connectors", "register", "crm")
    _cli("connectors", "register", "erp")  # accounting_periods (SPEC 2b); `db init` made it
    pid = flowproc.start(settings)
    console.print(f"[green]flow running[/] (pid {pid}, log {flowproc.log_file(settings)})")
    _wait_caught_up()
    story = Demo(
        psa=psa_engine(settings),
        crm=crm_engine(settings),
        erp=erp_engine(settings.require("erp_db_url")),
        tag=new_tag(),
        cli=_cli,
    )
    story.run()
    console.rule("[bold]explore further")
    console.print(
        "  billsync exceptions list          # the exception queue\n"
        "  billsync recon tail               # live reconciliation from recon.snapshots\n"
        "  billsync recon audit              # batch target vs the ERP\n"
        "  billsync dashboard                # http://127.0.0.1:8765\n"
        f"  curl 127.0.0.1:{settings.metrics_port}/metrics\n"
        "  make demo-down                    # stop the flow and the stack"
    )


@app.command()
def down(purge: Annotated[bool, typer.Option(help="also delete the stack's data")] = False) -> None:
    """Stop the demo's flow and the local stack."""
    settings = get_settings()
    if flowproc.stop(settings):
        console.print("flow stopped")
    _cli("stack", "down", *(["--purge"] if purge else []))
