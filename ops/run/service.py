"""``billsync run`` as a service: one process of the flow with its endpoints and watchdog, or
a cluster of such processes on loopback (``--processes``)."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta

from bytewax.run import cli_main
from prometheus_client import REGISTRY

from billsync.settings import Settings
from dataflows.progress import PROGRESS
from ops.reads.metrics import ErpCollector
from ops.run import watchdog
from ops.run.http import Health, serve
from ops.run.runner import erp_engine, prepare_recovery, production_flow, recovery_dir


def serve_flow(
    settings: Settings,
    *,
    workers: int,
    process_id: int | None,
    addresses: str | None,
    rebuild: bool,
    say: Callable[[str], object],
) -> None:
    """Run one process of the flow until it stops: recovery prepared, ``/metrics`` and
    ``/health`` served when ``BILLSYNC_METRICS_PORT`` is set (the ERP-side gauges by process
    0 only), the stall watchdog started, then Bytewax's ``cli_main``."""
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
        say(f"metrics: http://127.0.0.1:{port}/metrics, health: /health")
    say(
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


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def exit_with_parent() -> None:
    """In a spawned process, before it runs: Linux sends it SIGTERM (a stop, as Ctrl-C) when the
    process that spawned it dies, even by SIGKILL. Without it a ``kill -9`` of ``billsync run
    --processes N`` left the N Bytewax processes running, holding the ERP writer lock and the
    cluster's ports, so a supervisor's restart would be refused (one writer per ERP)."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn_processes(processes: int, workers: int, base_port: int) -> int:
    """One OS process per Bytewax process, all on loopback; stop all if one stops (and each
    stops when this one dies: :func:`exit_with_parent`). Returns the highest exit code of the
    processes (0 when all ended cleanly)."""
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
            ],
            # runs in the child before exec (the CLI has started no thread at this point)
            preexec_fn=exit_with_parent,
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
    return max(codes)
