"""Shards of the billing state (issue 13): who evaluates an item, and one delta from N.

The partitioned engine replicates what is cheap and splits what is dear. Every shard
applies every change: it keeps every source row (reference rows and the rows of open
items), every source position and every final item's stub, so any shard can tell whether
a change is stale or an item final. Only the *evaluation* is split: an item is classified,
allocated and emitted by exactly one shard, its **owner**, the shard of its project's
contract (:func:`shard_of`). A contract's candidates, books and final consumption
therefore all live in one shard, and an item that changes owner (its project moved to
another contract, or it moved to another project) needs no hand-off: the new owner already
holds its row and evaluates it; the old owner evaluates it as "not mine" — no line there —
and so emits its removal, which :func:`merge_shards` folds with the new owner's update.

What the shards cannot decide alone is which items a close made final: that needs the
allocation of their contract. So after a close each shard hands the stubs it made to the
others (:meth:`~dataflows.billing.engine.BillingEngine.own_segments` and
:meth:`~dataflows.billing.engine.BillingEngine.import_finals`) before any shard applies
another change; the flow carries them as files and holds its sequencer meanwhile
(ARCHITECTURE.md, "Partitioning").
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TypeVar

from dataflows.billing.target import (
    Delta,
    LineKey,
    LineTarget,
    LineUpdate,
    ScheduleLine,
    ScheduleUpdate,
)


def shard_of(contract_id: str | None, shards: int) -> int:
    """The shard that evaluates the items of ``contract_id``'s projects (0 for items whose
    project is unknown or has no contract).

    A stable 64-bit digest, not Python's salted ``hash`` (every process must agree, and the
    recovery state depends on it), and not CRC-32, which maps short ids badly (``C1``,
    ``C2``, ``C3`` all to one of two shards)."""
    if shards <= 1 or contract_id is None:
        return 0
    raw = hashlib.blake2b(contract_id.encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big") % shards


def merge_shards(deltas: Sequence[Delta]) -> Delta:
    """One delta from the shards' deltas of one change (or one transaction).

    Per item at most one shard held a target before (the old owner) and at most one holds
    one after (the new owner): the update's ``old`` is the non-empty ``old``, its ``new`` the
    non-empty ``new``; ``released`` / ``reopened`` hold if any shard says so (every shard
    keeps every final item's stub, so every shard releases it; only its owner knows its new
    target). An item that moved owner without changing its target is no update. The period
    event is every shard's (the same change): the first is taken."""
    if len(deltas) == 1:
        return deltas[0]
    lines: dict[LineKey, list[LineUpdate]] = {}
    schedule: dict[str, list[ScheduleUpdate]] = {}
    period = None
    for d in deltas:
        if period is None:
            period = d.period
        for u in d.lines:
            lines.setdefault(u.key, []).append(u)
        for s in d.schedule:
            schedule.setdefault(s.milestone_id, []).append(s)
    merged: list[LineUpdate] = []
    for key in sorted(lines):
        ups = lines[key]
        old: LineTarget | None = _one([u.old for u in ups], key)
        new: LineTarget | None = _one([u.new for u in ups], key)
        released = any(u.released for u in ups)
        reopened = any(u.reopened for u in ups)
        if old != new or released or reopened:
            merged.append(LineUpdate(key, old, new, released=released, reopened=reopened))
    sched: list[ScheduleUpdate] = []
    for mid in sorted(schedule):
        sups = schedule[mid]
        sold: ScheduleLine | None = _one([s.old for s in sups], mid)
        snew: ScheduleLine | None = _one([s.new for s in sups], mid)
        if sold != snew:
            sched.append(ScheduleUpdate(mid, sold, snew))
    return Delta(lines=tuple(merged), schedule=tuple(sched), period=period)


T = TypeVar("T")


def _one(values: list[T | None], key: object) -> T | None:
    """The one value that is not None (None if none); two are a broken invariant."""
    found = [v for v in values if v is not None]
    if len(found) > 1:
        raise AssertionError(f"{key}: {len(found)} shards held it at once")
    return found[0] if found else None
