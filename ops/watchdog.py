"""A stall watchdog for ``billsync run``: exit (code 75) when the flow stops consuming.

Bytewax 0.21.1 was seen, rarely, to stop closing epochs while busy at 100 % CPU
(ARCHITECTURE.md, "Known issues"): nothing more is consumed or written. The watchdog exits
when no input partition closed an epoch for ``stall_s`` seconds (epochs close every snapshot
interval, idle or not; the partitions report it, ``ops/runner.py``), or when records wait on a
partition the flow has read and nothing was decoded for ``stall_s``. It logs
``stall_detected`` and exits with
:data:`STALL_EXIT`, so the supervisor (systemd, compose ``restart:``) restarts it — a restart
is exact (Bytewax recovery + the ERP writer's diff). Partitions not read yet by this process
are not judged: their position is unknown here.
"""

from __future__ import annotations

import os
import threading
import time

import structlog
from confluent_kafka import Consumer, KafkaException, TopicPartition

from dataflows.progress import Progress

STALL_EXIT = 75  # EX_TEMPFAIL: try again
log = structlog.get_logger(__name__)


def waiting(progress: Progress, consumer: Consumer) -> dict[str, int]:
    """Records waiting beyond the last decoded offset, per partition the flow has read."""
    out: dict[str, int] = {}
    for (topic, partition), offset in list(progress.offsets.items()):
        try:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=5, cached=False
            )
        except KafkaException:
            continue  # broker restarting: not a stall of ours
        if high > offset + 1:
            out[f"{topic}[{partition}]"] = high - offset - 1
    return out


def start(bootstrap: str, progress: Progress, stall_s: float, every_s: float = 5.0) -> None:
    def run() -> None:
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "billsync-watchdog"})
        while True:
            time.sleep(every_s)
            now = time.monotonic()
            no_epoch = now - progress.epoch_at
            if no_epoch >= stall_s:  # epochs close every snapshot interval, idle or not
                log.error("stall_detected", no_epoch_close_s=round(no_epoch), exit=STALL_EXIT)
                os._exit(STALL_EXIT)  # the dataflow thread cannot be interrupted from here
            idle = now - progress.last_at
            if idle < stall_s:
                continue
            behind = waiting(progress, consumer)
            if behind and time.monotonic() - progress.last_at >= stall_s:
                log.error("stall_detected", idle_s=round(idle), waiting=behind, exit=STALL_EXIT)
                os._exit(STALL_EXIT)

    threading.Thread(target=run, name="billsync-watchdog", daemon=True).start()
