"""Where the flow has got to: the last offset decoded per partition, and when.

Written by the decode step (one dict store per record), read by the stall watchdog of
``billsync run`` (``ops/watchdog.py``).
"""

from __future__ import annotations

import time


class Progress:
    def __init__(self) -> None:
        self.offsets: dict[tuple[str, int], int] = {}
        self.last_at = time.monotonic()
        self.epoch_at = time.monotonic()  # last epoch close of an input partition

    def epoch(self) -> None:
        self.epoch_at = time.monotonic()

    def note(self, topic: str, partition: int, offset: int) -> None:
        self.offsets[(topic, partition)] = offset
        self.last_at = time.monotonic()


PROGRESS = Progress()
