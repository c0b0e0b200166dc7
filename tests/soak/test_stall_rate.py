"""soak 01 — short loaded runs, counted: does the flow stall, does a connector hang?

Why it exists: ARCHITECTURE.md's known issues name two faults seen a few times in forty-odd
runs (a flow that stops closing epochs at 100 % CPU; registry responses a connector never
receives). One CI run cannot show a rate, and a harness that recovers silently hides them.
Each run here is what a user does on the stack: a fresh ``billsync run`` (own ERP schema,
reading every topic from offset 0: a catch-up, then live), a mixed PSA/CRM load for
``LOAD_S``, then the audit must come clean. Nothing is injected, so a stall restart or a
connector heal by the harness FAILS the run (tests/supervision.py) and the session summary
lists each with the stalled flow's busy threads (py-spy, logged by the watchdog). The figure
is failed runs / runs: ``make soak RUNS=30``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from tests.chaos.checks import converged
from tests.chaos.load import Load
from tests.e2e.harness import Erp, Flow

LOAD_S = 40.0
RATE = 8.0  # changes per second, twice the chaos tier's


def test_a_loaded_run_converges_without_recovery(
    soak_run: int, make_flow: Callable[[], Flow], erp_of: Callable[[Flow], Erp], load: Load
) -> None:
    t0 = time.monotonic()
    load.world()
    flow = make_flow()
    flow.start()
    erp = erp_of(flow)
    erp.wait_tables(flow)
    load.start(rate=RATE)
    load.run_for(LOAD_S)
    load.stop()
    assert load.counts["failed"] == 0, load.failures[:5]
    took = converged(flow, erp, load)
    print(f"soak run {soak_run}: {load.summary()}; audit clean {took:.0f}s after the load, "
          f"{time.monotonic() - t0:.0f}s in all")  # fmt: skip
