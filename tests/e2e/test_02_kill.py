"""e2e 02 — SIGKILL the flow mid-stream, start it again (issue 4 "Done when", SPEC 4 first bullet).

Why it exists: Bytewax delivers at-least-once and a replay may interleave partitions
differently; exactly-once in the ERP is billsync's own construction (diff against the ERP in
one transaction, deterministic ids). Only a real kill of the real process, with Kafka offsets
and engine state coming back from the recovery snapshots, shows that a restart ends in the
state of an uninterrupted run: ``recon audit`` clean, every item's ledger equal to its target,
and no effect posted twice anywhere (entries 0..n-1 per item with their deterministic ids; a
``charge`` only on an empty item; a ``reversal`` only to exactly 0).

Moments (parametrized):

- ``catch_up``: the story's world and a burst of 300 approvals are written first; the flow is
  killed while it is still replaying the seed topics from offset 0, restarted, then killed
  again as soon as the ERP shows its first burst line, restarted again; the rest of the story
  follows.
- ``mid_burst``: the flow is live; the story runs to the amendment; then a thread writes the
  burst (6 transactions of 50 approvals, then edits and deletes) while the flow is killed as
  soon as the ERP shows the first burst line (``first_commit``: an ERP commit that no
  snapshot covers yet, so the restart replays it) or 150 of them (``half_burst``); the
  writes go on while it is down, the rest of the story too; restarted. Each twice: the flow
  as one process, and as ``--processes 2 --workers 2`` (issue 13, point 2), whose recovery
  store the two processes share; the kill takes the flow's whole process group.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from tests.e2e.harness import CLUSTER_ENV, CLUSTERS, Erp, Flow, Sources, wait_until
from tests.e2e.story import Burst, Story, ledger_problems


def burst_seen(erp: Erp, burst: Burst) -> int:
    return len(erp.lines(burst.keys()))


def finish_and_verify(flow: Flow, erp: Erp, story: Story, burst: Burst) -> None:
    t0 = time.monotonic()
    story.expect.update(burst.expected())
    erp.wait_lines(story.expect, flow=flow, what="after the restart")
    erp.wait_schedule(story.schedule, flow=flow)
    t1 = time.monotonic()
    problems = ledger_problems(erp, story)
    assert not problems, "\n".join(problems)
    flow.audit_clean()
    t2 = time.monotonic()
    everywhere = erp.all_ledger_violations()
    print(f"own lines converged in {t1 - t0:.1f}s, audit clean after {t2 - t1:.1f}s more")
    assert not everywhere, f"{len(everywhere)} ledger violation(s):\n" + "\n".join(everywhere[:20])


def test_kill_during_catch_up(
    make_flow: Callable[[], Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
) -> None:
    story = Story(sources, prefix)
    burst = Burst(story)
    story.world()
    burst.setup()
    for chunk in burst.chunks():
        chunk()
    flow = make_flow()
    flow.start()
    erp = erp_of(flow)
    erp.wait_tables(flow)
    # kill 1: the sources are being replayed from offset 0 (the burst above, and on a stack
    # that has them the seed and earlier tests' rows): kill right after the first ERP commit,
    # which every replay has, however much data the stack holds (a fresh CI stack has little)
    seen = wait_until(lambda: erp.count_lines(), timeout=120,
                      what="the replay to be under way", flow=flow)  # fmt: skip
    flow.kill()
    print(f"kill 1 at {seen} line states")
    flow.start()
    # kill 2: the first burst line reached the ERP (a batch of them is being written)
    seen = wait_until(lambda: burst_seen(erp, burst), timeout=150,
                      what="the first burst line in the ERP", flow=flow)  # fmt: skip
    flow.kill()
    print(f"kill 2 at {seen} of {burst.n} burst lines")
    flow.start()
    for _name, step in story.steps[1:]:
        step()
    finish_and_verify(flow, erp, story, burst)


@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
@pytest.mark.parametrize("kill_at", [1, 150], ids=["first_commit", "half_burst"])
def test_kill_mid_burst(
    make_flow: Callable[..., Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
    kill_at: int,
    cluster: str,
) -> None:
    story = Story(sources, prefix)
    burst = Burst(story)
    flow = make_flow(*CLUSTERS[cluster](), env=CLUSTER_ENV.get(cluster))
    flow.start()
    erp = erp_of(flow)
    erp.wait_tables(flow)
    steps = dict(story.steps)
    for name in ("world", "late_cap_line", "move_project", "amendment_opened"):
        steps[name]()
        erp.wait_lines(story.expect, flow=flow, what=f"after step {name!r}")
    burst.setup()
    chunks = burst.chunks()
    written = []

    def writer() -> None:  # the PSA keeps writing while the flow dies
        for chunk in chunks:
            chunk()
            written.append(chunk)
            time.sleep(0.3)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        # the first burst lines in the ERP = an ERP commit not yet covered by a snapshot
        seen = wait_until(
            lambda: (n := burst_seen(erp, burst)) >= kill_at and n,
            timeout=150,
            what=f"{kill_at} burst line(s) in the ERP",
            flow=flow,
        )
        flow.kill()
        print(f"killed at {seen} burst lines, {len(written)} of {len(chunks)} chunks written")
    finally:
        thread.join()
    t0 = time.monotonic()
    for name in ("amendment_approved", "delete_line", "release_and_cancel"):
        steps[name]()
    flow.start()
    finish_and_verify(flow, erp, story, burst)
    print(f"converged {time.monotonic() - t0:.1f}s after the kill")
