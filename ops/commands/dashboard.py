"""``billsync dashboard``: the finance/operations page on 127.0.0.1."""

from __future__ import annotations

from typing import Annotated

import typer

from billsync.settings import get_settings
from ops.console import console
from ops.reads.dashboard.server import make_server
from ops.reads.dashboard.summary import summary
from ops.reads.metrics import ErpCollector
from ops.run.runner import erp_engine

app = typer.Typer(help="The dashboard page: holds, amounts by period, lag, latency, DLQ, drift.")


@app.callback(invoke_without_command=True)
def dashboard(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 8765,
    metrics_url: Annotated[
        str | None,
        typer.Option(help="the flow's /metrics (default: 127.0.0.1:<metrics_port>)"),
    ] = None,
) -> None:
    """Serve the page until Ctrl-C. Lag and latency come from the flow's /metrics when it
    runs; everything else from the ERP and the broker."""
    settings = get_settings()
    engine = erp_engine(settings.require("erp_db_url"))
    url = metrics_url or (
        f"http://127.0.0.1:{settings.metrics_port}/metrics" if settings.metrics_port else None
    )
    dlq = ErpCollector(engine, settings.kafka_bootstrap)
    server = make_server(port, lambda: summary(engine, url, dlq.dlq_size))
    console.print(f"dashboard: http://127.0.0.1:{port}/  (JSON: /api/summary)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.shutdown()
