"""chaos 02 — restart Kafka Connect, the broker, PostgreSQL and MariaDB under load.

Why it exists: SPEC 4 ("restarting Kafka Connect, the broker or a source database loses
nothing"). Each restart is a real stop (SIGTERM; PostgreSQL: fast shutdown) and start of ONE
component of the local stack by its pid (``ops.stack.launcher.restart``), waiting for its
health check, while the load keeps writing to PSA and CRM. PostgreSQL hosts the PSA *and* the
ERP, so its restart also cuts the flow's own database connections mid-transaction.

Phases, one component each, in this order: connect, kafka, postgres, mariadb. In each phase:
the load runs, the component is restarted, the load runs on, then stops; the Debezium
connectors must be RUNNING again (a FAILED task is restarted with ``billsync connectors
restart`` and reported: that is the documented operator action); the flow must still be
running — if it died it is started again and the phase reports it (``flow died``), it is not
hidden; finally ``recon audit`` is clean, the ledger of every line equals its target and no
effect is posted twice. Writes of the load that failed while a database was down were never
committed, so they are not part of the target.

At the end (also on failure) every component is started again if it is not running and
failed connector tasks are restarted, so the stack is healthy for the next test.

Run as one process and as ``billsync run --processes 2 --workers 2`` (issue 13): a process
of the cluster that dies or exits for a stall ends the command with its status (the other
process is stopped), and the phase reports it like a single process's death.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from billsync.settings import Settings
from ops.stack import launcher
from tests.chaos.checks import converged
from tests.chaos.load import Load
from tests.e2e.harness import CLUSTERS, PLAIN_CLUSTERS, Erp, Flow, stack_report

COMPONENTS = ("connect", "kafka", "postgres", "mariadb")
CONNECTORS = ("psa", "crm")


def connector_states(flow: Flow) -> dict[str, str]:
    """``part -> state`` of the psa and crm connectors (``psa/task 0 -> RUNNING``)."""
    res = flow.cli("connectors", "status", "--json", timeout=60)
    if res.returncode != 0:
        return {"connect": f"unreachable: {res.stderr[-200:]}"}
    rows: list[dict[str, Any]] = json.loads(res.stdout)
    return {f"{r['connector']}/{r['part']}": r["state"] for r in rows}


def connectors_running(flow: Flow, timeout: float = 180.0) -> list[str]:
    """Wait until both connectors and their tasks RUN; restart a FAILED one (and say so)."""
    actions: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        states = connector_states(flow)
        mine = {k: v for k, v in states.items() if k.split("/")[0] in CONNECTORS}
        if len(mine) >= 2 * len(CONNECTORS) and all(v == "RUNNING" for v in mine.values()):
            return actions
        for name in CONNECTORS:
            if any(k.startswith(name + "/") and v == "FAILED" for k, v in mine.items()):
                res = flow.cli("connectors", "restart", name, timeout=200)
                actions.append(f"restarted connector {name} (exit {res.returncode})")
        if time.monotonic() > deadline:
            raise AssertionError(
                f"connectors not RUNNING after {timeout:.0f}s: {states}\n"
                + stack_report(flow.settings, flow.log_path)
            )
        time.sleep(2)


@pytest.mark.parametrize("cluster", PLAIN_CLUSTERS)
def test_restart_each_component_under_load(
    cluster: str,
    stack: Settings,
    make_flow: Callable[..., Flow],
    erp_of: Callable[[Flow], Erp],
    load: Load,
    healed: None,
) -> None:
    load.world()
    flow = make_flow(*CLUSTERS[cluster]())
    flow.start()
    erp = erp_of(flow)
    erp.wait_tables(flow)
    converged(flow, erp, load)  # caught up with the world before the first fault
    report: list[str] = []
    try:
        for name in COMPONENTS:
            t0 = time.monotonic()
            load.start(rate=4.0)
            load.run_for(4)
            restarted = launcher.restart(stack, name, lambda _c, _m: None)
            down = time.monotonic() - t0 - 4
            load.run_for(5)
            load.stop()
            actions = connectors_running(flow)
            if not flow.alive():
                actions.append(f"flow died (exit {flow.proc.returncode if flow.proc else '?'}); "
                               "started again")  # fmt: skip
                flow.start()
            took = converged(flow, erp, load)
            line = (
                f"{name}: restarted in {down:.0f}s (pid {restarted.pid}); "
                f"{'; '.join(actions) or 'flow and connectors carried on'}; "
                f"audit clean {took:.0f}s after the load stopped; load so far {load.summary()}"
            )
            report.append(line)
            print(line)
    finally:
        load.stop()
        connectors_running(flow)
        print("\n".join(report))
        if load.failures:
            print(f"{len(load.failures)} load writes failed, e.g. {load.failures[:3]}")
