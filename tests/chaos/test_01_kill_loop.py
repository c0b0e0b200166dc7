"""chaos 01 — kill -9 the flow at random moments, again and again, under a steady load.

Why it exists: SPEC 4's first promise ("killing the dataflow at any moment and starting it
again ends in the same ERP state as an uninterrupted run") is a claim about *every* moment,
and e2e test_02 kills at two chosen ones. Here the moments are random (seeded, printed) while
PSA and CRM keep changing: during the catch-up from offset 0, between snapshots, in the middle
of an ERP transaction or an outbox relay. After at least 5 SIGKILLs and restarts, and once the
load has stopped and the flow caught up: ``recon audit`` is clean, every item's ledger equals
its target, and no effect is posted twice (deterministic ids, seq without gaps, charge only
on an empty item, reversal exactly to 0).

Run as one process and as ``billsync run --processes 2 --workers 2`` (issue 13): in the
cluster a SIGKILL ends the command and its processes together (the harness kills the
process group), and each start resumes the recovery store the two processes share.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from tests.chaos.checks import converged
from tests.chaos.load import Load
from tests.e2e.harness import CLUSTER_ENV, CLUSTERS, Erp, Flow

KILLS = 6
# seconds a started flow lives before its SIGKILL: from "still booting" to "well into work"
LIFETIME_S = (2.0, 14.0)


@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
def test_kill_loop_under_load(
    cluster: str, make_flow: Callable[..., Flow], erp_of: Callable[[Flow], Erp], load: Load
) -> None:
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    print(f"seed {seed}")
    load.world()
    load.start(rate=4.0)
    flow = make_flow(*CLUSTERS[cluster](), env=CLUSTER_ENV.get(cluster))
    flow.start()
    erp = erp_of(flow)
    erp.wait_tables(flow)
    began = time.monotonic()
    for kill in range(1, KILLS + 1):
        life = rng.uniform(*LIFETIME_S)
        time.sleep(life)
        flow.check_alive()  # it must not have died on its own
        lines = erp.count_lines()
        flow.kill()
        print(f"kill {kill} after {life:.1f}s alive, {lines} line states, load {load.summary()}")
        if rng.random() < 0.5:
            time.sleep(rng.uniform(0.5, 3.0))  # changes pile up while it is down
        flow.start()
    load.run_for(5)
    load.stop()
    print(f"load stopped after {time.monotonic() - began:.0f}s: {load.summary()}")
    assert load.counts["failed"] == 0, load.failures[:5]
    took = converged(flow, erp, load)
    print(f"audit clean {took:.1f}s after the load stopped; {flow.starts} starts")
