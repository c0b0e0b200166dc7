"""``billsync capture``: record the Debezium topics for ``billsync run --from-file``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from billsync.settings import get_settings
from ops.console import console
from ops.topics.capture import capture

app = typer.Typer(help="Record the Debezium source topics (with their schemas) into a file.")


@app.callback(invoke_without_command=True)
def run(
    out: Annotated[Path, typer.Option("--out", "-o", help="capture file to write")],
    max_records: Annotated[int | None, typer.Option(help="stop after this many")] = None,
) -> None:
    """Read every source topic from the beginning to its current end into OUT."""
    n = capture(get_settings(), out, max_records=max_records)
    console.print(f"captured {n} records into {out}; replay: billsync run --from-file {out}")
