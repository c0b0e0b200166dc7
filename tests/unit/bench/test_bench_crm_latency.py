"""`bench e2e --source crm` takes one sample per rate change from the probe's ledger.

Why: the bench polled the probe's line and sampled only the values that survived a poll, so
a run gave few samples and no p99 (BENCHMARKS.md, "CRM rate changes"). The ledger holds every
value the ERP posted, with its commit: change k is done when the ERP first held value k or a
later one (a change overtaken by the next before the ERP posted it is done with the later).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ops.bench.e2e_crm import ledger_latencies

D = Decimal
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def seq(*entries: tuple[str, float]) -> list[tuple[int, Decimal, datetime]]:
    return [(i, D(amount), at(t)) for i, (amount, t) in enumerate(entries)]


@pytest.mark.parametrize(
    ("entries", "commits", "expected"),
    [
        # the charge at the original rate, then one adjustment per change
        (seq(("100.00", 0), ("0.01", 1.3), ("0.01", 2.2)), [at(1.0), at(2.0)], [0.3, 0.2]),
        # changes 1 and 2 posted together (coalesced): both done at that commit
        (seq(("100.00", 0), ("0.02", 2.5)), [at(1.0), at(2.0)], [1.5, 0.5]),
        # the ERP never reached change 3: no sample for it
        (seq(("100.00", 0), ("0.02", 2.5)), [at(1.0), at(2.0), at(3.0)], [1.5, 0.5]),
        # nothing posted since the charge
        (seq(("100.00", 0)), [at(1.0)], []),
        # a later reversal (the rate set back after the run) changes no sample
        (seq(("100.00", 0), ("0.01", 1.5), ("-0.01", 9)), [at(1.0)], [0.5]),
    ],
)  # fmt: skip
def test_every_change_is_done_at_the_first_commit_holding_it_or_a_later_one(
    entries: list[tuple[int, Decimal, datetime]], commits: list[datetime], expected: list[float]
) -> None:
    assert ledger_latencies(entries, D("100.00"), commits) == pytest.approx(expected)


def test_an_earlier_runs_entries_of_the_same_probe_id_are_not_samples() -> None:
    """Found on the demo stack: a probe's id is the PSA's highest + 2,000,000, so the next run
    reuses a deleted probe's id, whose charge, adjustments and reversal stay in the ledger;
    read as this run's, they gave latencies of -82 s."""
    t = -100  # the earlier run: its changes reached the ERP long before this run's commits
    earlier = [("100.00", t), ("0.01", t + 1), ("0.01", t + 2), ("-100.02", t + 9)]
    entries = seq(*earlier, ("100.00", 0), ("0.01", 1.4), ("0.01", 2.1))
    commits = [at(1.0), at(2.0)]
    assert ledger_latencies(entries, D("100.00"), commits, after_seq=3) == pytest.approx([0.4, 0.1])
    assert ledger_latencies(entries, D("100.00"), commits)[0] < 0  # what the bench reported
