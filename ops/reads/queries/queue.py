"""The exception queue: lines in ``held`` / ``exception`` / ``partially_held`` right now."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, func, select

from dataflows.billing.target import QUEUE_STATES, ZERO
from sinks.erp import tables as t

QUEUE = sorted(s.value for s in QUEUE_STATES)


@dataclass(frozen=True, slots=True)
class QueuedLine:
    source_type: str
    source_id: str
    state: str
    reason: str | None
    contract_id: str | None
    project_id: str | None
    period: str | None
    billable_amount: Decimal
    held_amount: Decimal
    currency: str | None
    age: timedelta
    updated_at: datetime
    source_position: str | None


def queued_lines(
    conn: Connection,
    now: datetime,
    *,
    reason: str | None = None,
    contract_id: str | None = None,
    limit: int | None = None,
) -> list[QueuedLine]:
    """Current holds and exceptions, oldest first (age = now - updated_at)."""
    s = t.billing_line_state
    query = select(s).where(s.c.state.in_(QUEUE))
    if reason is not None:
        query = query.where(s.c.reason == reason)
    if contract_id is not None:
        query = query.where(s.c.contract_id == contract_id)
    query = query.order_by(s.c.updated_at, s.c.source_type, s.c.source_id)
    if limit is not None:
        query = query.limit(limit)
    return [
        QueuedLine(
            source_type=r["source_type"],
            source_id=r["source_id"],
            state=r["state"],
            reason=r["reason"],
            contract_id=r["contract_id"],
            project_id=r["project_id"],
            period=r["period"],
            billable_amount=r["billable_amount"],
            held_amount=r["held_amount"],
            currency=r["currency"],
            age=now - r["updated_at"],
            updated_at=r["updated_at"],
            source_position=r["source_position"],
        )
        for r in conn.execute(query).mappings()
    ]


def queue_counts(conn: Connection) -> dict[tuple[str, str], int]:
    """(state, reason) -> lines: one GROUP BY, cheap enough for every /metrics scrape."""
    s = t.billing_line_state
    rows = conn.execute(
        select(s.c.state, s.c.reason, func.count())
        .where(s.c.state.in_(QUEUE))
        .group_by(s.c.state, s.c.reason)
    )
    return {(state, reason or ""): int(n) for state, reason, n in rows}


@dataclass(frozen=True, slots=True)
class ReasonTotal:
    state: str
    reason: str
    lines: int
    billable_amount: Decimal
    held_amount: Decimal


def holds_by_reason(conn: Connection) -> list[ReasonTotal]:
    """Lines and amounts per (state, reason) of the queue, largest count first (exact sums)."""
    s = t.billing_line_state
    lines: dict[tuple[str, str], int] = defaultdict(int)
    billable: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    held: dict[tuple[str, str], Decimal] = defaultdict(lambda: ZERO)
    query = select(s.c.state, s.c.reason, s.c.billable_amount, s.c.held_amount).where(
        s.c.state.in_(QUEUE)
    )
    for state, reason, b, h in conn.execute(query):
        key = (state, reason or "")
        lines[key] += 1
        billable[key] += b
        held[key] += h
    out = [ReasonTotal(k[0], k[1], n, billable[k], held[k]) for k, n in lines.items()]
    return sorted(out, key=lambda r: (-r.lines, r.state, r.reason))


def as_row(line: QueuedLine) -> dict[str, Any]:
    """A display row: age in whole seconds and as text."""
    seconds = max(0, int(line.age.total_seconds()))
    return {
        "source_type": line.source_type,
        "source_id": line.source_id,
        "state": line.state,
        "reason": line.reason,
        "contract_id": line.contract_id,
        "project_id": line.project_id,
        "period": line.period,
        "billable_amount": line.billable_amount,
        "held_amount": line.held_amount,
        "currency": line.currency,
        "age_s": seconds,
        "age": _age_text(seconds),
        "updated_at": line.updated_at,
        "source_position": line.source_position,
    }


def _age_text(seconds: int) -> str:
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {rest % 60}s"
