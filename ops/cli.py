"""The ``billsync`` command line: one tool, a sub-command group per concern.

Each group lives in ``ops/commands/<name>.py`` and exposes ``app: typer.Typer``.
"""

from __future__ import annotations

import importlib

import typer

from billsync.errors import BillsyncError
from ops.console import err_console

app = typer.Typer(
    name="billsync",
    help="Change-data-capture billing: PSA time and CRM contracts to ERP billing transactions.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)

# (group name, module) — a group is listed here when its module exists.
GROUPS: list[tuple[str, str]] = [
    ("connectors", "ops.commands.connectors"),
    ("stack", "ops.commands.stack"),
    ("db", "ops.commands.db"),
    ("schemas", "ops.commands.schemas"),
    ("run", "ops.commands.run"),
    ("recon", "ops.commands.recon"),
    ("exceptions", "ops.commands.exceptions"),
    ("periods", "ops.commands.periods"),
    ("dlq", "ops.commands.dlq"),
    ("outbox", "ops.commands.outbox"),
    ("dashboard", "ops.commands.dashboard"),
    ("demo", "ops.commands.demo"),
    ("capture", "ops.commands.capture"),
    ("bench", "ops.commands.bench"),
]

for _name, _module in GROUPS:
    app.add_typer(importlib.import_module(_module).app, name=_name)


def main() -> None:
    """Entry point: BillsyncError becomes a clear message and exit code 1, never a traceback."""
    try:
        app()
    except BillsyncError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
