"""``billsync run`` as a service: one process of the flow with its endpoints and watchdog, or
a cluster of such processes on loopback (``--processes``)."""

from __future__ import annotations

import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

from bytewax.run import cli_main
from prometheus_client import REGISTRY

from billsync.settings import Settings
from dataflows.progress import PROGRESS
from ops.reads.metrics import ErpCollector
from ops.run import watchdog
from ops.run.gctune import tune_gc
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
    tune_gc()  # this process's collector thresholds (ops/run/gctune.py)
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
    """One OS process per Bytewax process, all on loopback, waited for by :func:`supervise`
    (one that ends stops the others; each stops when this one dies: :func:`exit_with_parent`).
    Returns the exit status :func:`supervise` gives (0 when all ended cleanly)."""
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

    return supervise(children)


def exit_code(returncode: int) -> int:
    """A child's exit status as a shell reports it: a death by signal N is 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def supervise(children: Sequence[subprocess.Popen[bytes]], poll_s: float = 0.2) -> int:
    """Wait for the processes of one cluster. When one of them ends on its own, the others
    are stopped (SIGTERM) and its exit status is returned if it failed — a stall exit 75 of
    any process, or a death by a signal (128 + N), reaches the supervisor, which restarts
    the whole cluster; otherwise the highest status. SIGTERM or Ctrl-C to this process
    stops them all. A process that dies of the SIGTERM sent here stopped as asked: status 0.
    (Before 2026-12-01 the processes were waited for one after the other, so a process that
    ended before the first one went unnoticed, and a stop returned the negative signal.)"""
    sent: set[int] = set()  # the children this function sent SIGTERM

    def stop() -> None:
        for i, c in enumerate(children):
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
                sent.add(i)

    asked = False

    def asked_to_stop(*_: object) -> None:
        nonlocal asked
        asked = True
        stop()

    previous = signal.signal(signal.SIGTERM, asked_to_stop)
    first: int | None = None
    try:
        while first is None:
            first = next((i for i, c in enumerate(children) if c.poll() is not None), None)
            if first is None:
                time.sleep(poll_s)
    except KeyboardInterrupt:
        asked = True
    finally:
        stop()
        codes = [c.wait() for c in children]
        signal.signal(signal.SIGTERM, previous)
    status = [0 if i in sent and rc == -signal.SIGTERM else exit_code(rc)
              for i, rc in enumerate(codes)]  # fmt: skip
    if not asked and first is not None and status[first] != 0:
        return status[first]
    return max(status)
