"""Where the flow has got to: the last offset decoded per partition, and when; and when the
billing step or the ERP writer last did work.

Written by the decode step (one dict store per record), the billing step (per unit) and the
sink (per batch), read by the stall watchdog of ``billsync run`` (``ops/run/watchdog.py``).
"""

from __future__ import annotations

import time


class Progress:
    def __init__(self) -> None:
        self.offsets: dict[tuple[str, int], int] = {}
        self.seen_at: dict[tuple[str, int], float] = {}  # per partition: its last decode
        self.epoch_at = time.monotonic()  # last epoch close of an input partition
        self.work_at = time.monotonic()  # last unit applied or ERP batch written

    def work(self) -> None:
        self.work_at = time.monotonic()

    def epoch(self) -> None:
        self.epoch_at = time.monotonic()

    def note(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        self.offsets[key] = offset
        self.seen_at[key] = time.monotonic()


PROGRESS = Progress()
