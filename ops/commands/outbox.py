"""``billsync outbox``: the transactional outbox — records set aside as unencodable."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import inspect

from billsync.settings import get_settings
from ops.console import JsonOpt, console, emit_table
from ops.run.runner import erp_engine
from sinks.erp import tables as t
from sinks.kafka.quarantine import quarantined

app = typer.Typer(help="The Kafka outbox: records quarantined because they cannot be encoded.")

COLUMNS = ("id", "stage", "outbox_id", "topic", "key", "created_at", "quarantined_at", "error")


@app.command("quarantine")
def quarantine_(
    topic: Annotated[str | None, typer.Option(help="only this topic")] = None,
    limit: Annotated[int | None, typer.Option(help="rows at most (oldest first)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Outbox records that cannot be encoded for their topic, oldest first: where they were
    refused (enqueue: before the outbox; relay: by the relay), the error, when.

    They are not published and not retried; the other records were. --json adds the
    payload (the record as JSON, exactly as written)."""
    engine = erp_engine(get_settings().require("erp_db_url"))
    if inspect(engine).has_table(t.outbox_quarantine.name):
        with engine.connect() as conn:
            found = quarantined(conn, topic=topic, limit=limit)
    else:  # the flow creates it at start; an ERP it never ran on has nothing quarantined
        found = []
    rows = [q.as_row() for q in found]
    if not as_json:
        rows = [{**r, "error": str(r["error"])[:100]} for r in rows]
    emit_table(
        rows,
        (*COLUMNS, "payload") if as_json else COLUMNS,
        title=f"{len(rows)} quarantined outbox record(s)",
        as_json=as_json,
    )
    if rows and not as_json:
        console.print("[yellow]not published: fix the cause, then re-publish by hand[/]")
