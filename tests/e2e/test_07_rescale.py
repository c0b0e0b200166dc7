"""e2e 07 — scale out and back: the same recovery store resumed with another cluster shape.

Why it exists: an operator who outgrows one process stops ``billsync run`` and starts it
again as ``--processes 2 --workers 2`` (and may go back). Bytewax 0.21 re-routes each key's
snapshot to the new workers (``../shared/notes/bytewax-0.21.md``, "Resume"); billsync adds
state outside Bytewax's store that must follow: the billing step's base and journal files
beside the store, the ERP sink's replay gate, the writer lock. The story runs its first
steps on one process of one worker, the next on 2 processes of 2 workers, the last on one
process again, each start resuming the last one's store; every step must reach its line
states, the ledger must equal the targets with no effect posted twice, and ``billsync recon
audit`` must be clean.
"""

from __future__ import annotations

from collections.abc import Callable

from tests.e2e.harness import CLUSTERS, Erp, Flow, Sources
from tests.e2e.story import Story, ledger_problems

# which cluster shape runs which steps of the story
LEGS = (
    ("1x1", ("world", "late_cap_line", "move_project")),
    ("2x2", ("amendment_opened", "amendment_approved")),
    ("1x1", ("delete_line", "release_and_cancel")),
)


def test_the_story_across_one_process_two_processes_and_back(
    make_flow: Callable[..., Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
) -> None:
    story = Story(sources, prefix)
    steps = dict(story.steps)
    assert [n for _, names in LEGS for n in names] == [n for n, _ in story.steps]
    flow = make_flow()
    erp: Erp | None = None
    for leg, (shape, names) in enumerate(LEGS):
        if leg:
            flow.stop()  # SIGTERM, as an operator changing the command line would
        flow.args = CLUSTERS[shape]()
        flow.start()
        erp = erp or erp_of(flow)
        erp.wait_tables(flow)
        for name in names:
            steps[name]()
            erp.wait_lines(story.expect, flow=flow, what=f"after step {name!r} on {shape}")
            erp.wait_schedule(story.schedule, flow=flow)
            problems = ledger_problems(erp, story)
            assert not problems, "\n".join(problems)
    assert erp is not None
    flow.audit_clean()
    everywhere = erp.all_ledger_violations()
    assert not everywhere, f"{len(everywhere)} ledger violation(s):\n" + "\n".join(everywhere[:20])
