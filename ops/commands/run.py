"""``billsync run``: the billing dataflow, always with Bytewax recovery."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from bytewax.run import cli_main
from prometheus_client import REGISTRY

from dataflows.progress import PROGRESS
from ops import watchdog
from ops.console import console
from ops.http import Health, serve
from ops.logs import configure as configure_logs
from ops.metrics import ErpCollector
from ops.runner import (
    erp_engine,
    prepare_recovery,
    production_flow,
    recovery_dir,
    recovery_store_exists,
    replay_file,
)
from ops.settings import get_settings

app = typer.Typer(help="Run the billing dataflow (Kafka in, ERP + Kafka out), with recovery.")


@app.callback(invoke_without_command=True)
def run(
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="workers per process")] = 1,
    processes: Annotated[int, typer.Option("--processes", "-p", min=1)] = 1,
    process_id: Annotated[int | None, typer.Option(hidden=True)] = None,
    addresses: Annotated[str | None, typer.Option(hidden=True)] = None,
    base_port: Annotated[int, typer.Option(help="first port of the process cluster")] = 2101,
    from_file: Annotated[
        Path | None, typer.Option(help="replay a `billsync capture` file: no Kafka, no registry")
    ] = None,
    erp_url: Annotated[
        str | None, typer.Option(help="with --from-file: the ERP database (default: SQLite)")
    ] = None,
    file_recovery: Annotated[
        Path | None,
        typer.Option(
            "--recovery-dir",
            help="with --from-file: keep a recovery store here, so that a run killed and "
            "started again with the same arguments resumes (default: no store, a batch run)",
        ),
    ] = None,
    snapshot_interval: Annotated[
        float | None,
        typer.Option(
            min=0.01,
            help="with --from-file: seconds between snapshots (epochs); default "
            "BILLSYNC_SNAPSHOT_INTERVAL_S",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="with --from-file: records read from the file at a time")
    ] = 1000,
    uneven_batches: Annotated[
        bool,
        typer.Option(
            "--uneven-batches",
            help="with --from-file: batches of random sizes up to --batch-size, new at every "
            "start, as Kafka fetches vary (what is posted must not depend on them)",
        ),
    ] = False,
    rebuild: Annotated[
        bool,
        typer.Option(
            "--rebuild",
            help="the recovery store is gone and the ERP holds postings: rebuild the state "
            "from the beginning of the compacted CDC topics (then check `recon audit`)",
        ),
    ] = False,
) -> None:
    """Start the flow. Ctrl-C (or SIGTERM) stops it; a restart resumes from the last snapshot.

    Without its recovery store the flow refuses to start into an ERP that holds postings,
    unless ``--rebuild`` says that replaying the topics from their beginning is meant.
    """
    settings = get_settings()
    configure_logs()
    if from_file is not None:
        url = erp_url or f"sqlite:///{from_file.with_suffix('.sqlite3')}"
        interval = None if snapshot_interval is None else timedelta(seconds=snapshot_interval)
        n = replay_file(
            from_file,
            url,
            workers=workers,
            recovery=file_recovery,
            snapshot_interval=interval,
            batch=batch_size,
            uneven=uneven_batches,
        )
        console.print(f"replayed {n} records from {from_file} into {url}")
        return
    if file_recovery is not None or snapshot_interval is not None:
        raise typer.BadParameter(
            "--recovery-dir and --snapshot-interval are for --from-file runs; the Kafka run "
            "takes BILLSYNC_RECOVERY_DIR and BILLSYNC_SNAPSHOT_INTERVAL_S",
            param_hint="--recovery-dir",
        )
    if rebuild and recovery_store_exists(recovery_dir(settings)):
        console.print(
            f"[yellow]--rebuild ignored:[/] the recovery store {recovery_dir(settings)} exists; "
            "the flow resumes from it (remove it first to rebuild)"
        )
    if processes > 1 and process_id is None:
        prepare_recovery(settings, rebuild=rebuild)  # once, before the processes share it
        _spawn(processes, workers, base_port)
        return
    rc = prepare_recovery(settings, rebuild=rebuild)
    flow = production_flow(settings)
    health: Health | None = None
    if settings.metrics_port:
        port = settings.metrics_port + (process_id or 0)
        erp = erp_engine(settings.require("erp_db_url"))
        if not process_id:  # one process reports the ERP-side gauges
            REGISTRY.register(ErpCollector(erp, settings.kafka_bootstrap))
        health = Health(erp)
        serve(port, health)
        console.print(f"metrics: http://127.0.0.1:{port}/metrics, health: /health")
    console.print(
        f"billsync run: {workers} worker(s)"
        + (f", process {process_id}" if process_id is not None else "")
        + f", recovery {recovery_dir(settings)}, snapshots every {settings.snapshot_interval_s}s"
    )
    if health is not None:
        health.flow_started = True  # the flow is built and its topics exist; Bytewax takes over
    if settings.stall_exit_s:
        watchdog.start(settings.kafka_bootstrap, PROGRESS, settings.stall_exit_s)
    cli_main(  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated
        flow,
        workers_per_process=workers,
        process_id=process_id,
        addresses=addresses.split(",") if addresses else None,
        epoch_interval=timedelta(seconds=settings.snapshot_interval_s),
        recovery_config=rc,
    )


def _spawn(processes: int, workers: int, base_port: int) -> None:
    """One OS process per Bytewax process, all on loopback; stop all if one stops."""
    addrs = ",".join(f"127.0.0.1:{base_port + i}" for i in range(processes))
    children = [
        subprocess.Popen(  # noqa: S603  # our own CLI, fixed arguments
            [
                sys.executable,
                "-m",
                "ops.cli",
                "run",
                "--workers",
                str(workers),
                "--process-id",
                str(i),
                "--addresses",
                addrs,
            ]
        )
        for i in range(processes)
    ]

    def stop(*_: object) -> None:
        for c in children:
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    try:
        codes = [c.wait() for c in children]
    except KeyboardInterrupt:
        stop()
        codes = [c.wait() for c in children]
    if any(codes):
        raise typer.Exit(max(codes))
