"""The stall watchdog judges only partitions the flow has read, by records waiting there."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

from confluent_kafka import TopicPartition

from dataflows.progress import Progress
from ops.run import watchdog
from ops.run.watchdog import waiting


class Watermarks:
    """High watermarks by (topic, partition): the one consumer call the watchdog makes."""

    def __init__(self, highs: dict[tuple[str, int], int]) -> None:
        self.highs = highs

    def get_watermark_offsets(self, tp: TopicPartition, **_: Any) -> tuple[int, int]:
        return 0, self.highs[(tp.topic, tp.partition)]


def test_records_waiting_beyond_the_last_decoded_offset_are_reported() -> None:
    p = Progress()
    p.note("psa.public.timesheets", 0, 41)  # next to read: 42
    p.note("crm.crm.contracts", 0, 9)
    highs = Watermarks({("psa.public.timesheets", 0): 50, ("crm.crm.contracts", 0): 10})
    assert waiting(p, highs) == {"psa.public.timesheets[0]": 8}  # type: ignore[arg-type]


def test_caught_up_flow_is_not_a_stall() -> None:
    p = Progress()
    p.note("psa.public.timesheets", 0, 49)
    assert waiting(p, Watermarks({("psa.public.timesheets", 0): 50})) == {}  # type: ignore[arg-type]


def test_no_epoch_close_is_a_stall_only_when_no_work_was_done_either() -> None:
    """A catch-up can put minutes of work in one epoch (the ordering stage releases a backlog
    of transactions when their ENDs are read): units applied meanwhile mean working."""
    from dataflows.progress import Progress as FlowProgress
    from ops.run.watchdog import epoch_stall

    p = FlowProgress()
    p.epoch_at, p.work_at = 100.0, 100.0
    assert epoch_stall(p, 120.0, 30.0) is None
    assert epoch_stall(p, 131.0, 30.0) == 31.0  # neither an epoch nor work: stalled
    p.work_at = 125.0
    assert epoch_stall(p, 131.0, 30.0) is None  # busy applying a backlog
    assert epoch_stall(p, 156.0, 30.0) == 56.0


def test_the_stall_report_carries_native_stacks() -> None:
    """Issue 12: a stall exit logs where every thread was (py-spy, from the dev extra)."""
    sleeper = subprocess.Popen(
        [sys.executable, "-c", "import time\ndef parked():\n    time.sleep(60)\nparked()"]
    )
    try:
        time.sleep(1.0)
        stacks = watchdog.dump_stacks(sleeper.pid)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert stacks is not None, "py-spy is not installed (pip install -e '.[dev]')"
    assert "parked" in stacks, stacks


def test_each_check_asks_through_a_consumer_of_its_own(monkeypatch: Any) -> None:
    """A consumer kept across a broker restart can be stuck like the flow's own: each check
    makes a new one and closes it."""
    made: list[FakeConsumer] = []

    class FakeConsumer(Watermarks):
        def __init__(self, config: dict[str, str]) -> None:
            super().__init__({("psa.transaction", 0): 30})
            self.config = config
            self.closed = False
            made.append(self)

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(watchdog, "Consumer", FakeConsumer)
    p = Progress()
    p.note("psa.transaction", 0, 19)
    assert watchdog.behind_now("127.0.0.1:9092", p) == {"psa.transaction[0]": 10}
    assert watchdog.behind_now("127.0.0.1:9092", p) == {"psa.transaction[0]": 10}
    assert len(made) == 2 and all(c.closed for c in made)
    assert made[0].config["bootstrap.servers"] == "127.0.0.1:9092"


def test_a_silent_partition_with_records_waiting_is_a_stall_while_others_are_read() -> None:
    """CI of 2026-12-01, chaos 02: after a broker restart the flow read nothing more from
    crm.transaction (10 records waiting) while heartbeat transactions were decoded from
    psa.transaction every 10 s: the partition is judged on its own silence."""
    p = Progress()
    p.note("crm.transaction", 0, 610)
    p.note("psa.transaction", 0, 2527)
    p.seen_at[("crm.transaction", 0)] -= 100  # silent for 100 s
    highs = Watermarks({("crm.transaction", 0): 621, ("psa.transaction", 0): 2530})
    # psa.transaction has records waiting too, but was read just now: not judged
    assert waiting(p, highs, idle_s=30) == {"crm.transaction[0]": 10}  # type: ignore[arg-type]
    assert waiting(p, highs, idle_s=200) == {}  # type: ignore[arg-type]
