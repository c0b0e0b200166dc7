"""What the billing step emits and its sinks consume: the contract between the flow and them.

The flow (:mod:`dataflows.flow`, :mod:`dataflows.logic`) produces these values; the ERP sink
(:mod:`sinks.erp.sink`, :mod:`sinks.erp.writer`, :mod:`sinks.erp.replay`) consumes them. They
live here, beside the flow that makes them, so that the sinks import the flow's contract and
the flow imports nothing of its sinks: a dataflow is a factory that is handed its sinks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dataflows.billing.target import LineUpdate, PeriodEvent, ScheduleUpdate

# the ERP sink's one partition: every emission goes to one writer (ARCHITECTURE.md §1)
PARTITION = "erp"


@dataclass(frozen=True, slots=True)
class Emission:
    """One output of the billing step: a target change (or a period's close or reopen) and
    the change that caused it. ``closed_through`` is the latest closed accounting period at
    that point of the stream: it decides each ledger entry's ``posting_period``."""

    update: LineUpdate | ScheduleUpdate | PeriodEvent
    source_position: str | None
    source_ts: datetime | None = None
    closed_through: str | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Where the billing step stands in its input, sent after the emissions of each unit it
    applied (one source transaction, or one change outside a transaction).

    ``covers``: per input partition (``"topic:partition"``), the highest Kafka offset of the
    records the unit released. ``resumed``: sent once, first, whenever the billing step
    starts (fresh: ``covers`` empty; from a snapshot: what the snapshot already held); the
    writer compares it with what the ERP has applied to recognise a replayed prefix (SPEC 4:
    a restart posts nothing an uninterrupted run would not). ``resync``: ends the unit a
    resumed billing step sends right after its ``resumed`` marker — the current target of
    every open line and milestone — which the writer uses only while it gathers a replayed
    prefix, and drops otherwise (:mod:`sinks.erp.replay`).

    What the writer relies on (:mod:`sinks.erp.replay`): every unit ends with its Progress,
    also a unit that emits nothing; the emissions of one unit and its Progress are emitted
    together (one epoch); units of one partition come with increasing offsets; a replay
    re-sends exactly the units after the snapshot, in the same order per partition."""

    covers: tuple[tuple[str, int], ...]
    resumed: bool = False
    resync: bool = False


# per input partition ("topic:partition"), a Kafka offset
Covers = tuple[tuple[str, int], ...]

# what the flow hands its ERP sink: emissions, progress markers and dead letters (dicts)
SinkItem = Emission | Progress | dict[str, Any]
