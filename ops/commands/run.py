"""``billsync run``: the billing dataflow, always with Bytewax recovery."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer

from billsync.logs import configure as configure_logs
from billsync.settings import get_settings
from ops.console import console
from ops.run.ports import check_cluster_ports
from ops.run.runner import prepare_recovery, recovery_dir, recovery_store_exists, replay_file
from ops.run.service import serve_flow, spawn_processes

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
        refused = check_cluster_ports(base_port, processes)
        if refused is not None:
            raise typer.BadParameter(refused, param_hint="--base-port")
        prepare_recovery(settings, rebuild=rebuild)  # once, before the processes share it
        code = spawn_processes(processes, workers, base_port)
        if code:
            raise typer.Exit(code)
        return
    serve_flow(
        settings,
        workers=workers,
        process_id=process_id,
        addresses=addresses,
        rebuild=rebuild,
        say=console.print,
    )
