"""Emission sequences for the writer's replay tests: units of a billing step's output.

A story is a list of units; a unit is the emissions of one source transaction followed by its
``Progress``. Targets are real :class:`LineTarget` values; closes and reopens are valid (in
order; only the latest closed period reopens), and an emission for a line a close made final
carries ``reopened`` (a ``CHANGED_AFTER_CLOSE`` correction), as the engine sends it.
:func:`erp_state` reads back everything the tests compare, entry for entry, without the
wall-clock fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import pairwise
from typing import Any

import orjson
from sqlalchemy import Engine, select

from dataflows.billing.periods import CLOSE, REOPEN, becomes_final
from dataflows.billing.target import LineKey, LineTarget, LineUpdate, PeriodEvent, SourceType, State
from dataflows.emissions import Emission, Progress
from sinks.erp import tables as t

D = Decimal
NOW = datetime(2026, 4, 1, tzinfo=UTC)
PSA = "psa.billing:0"
PERIODS = ("2026-01", "2026-02", "2026-03")
LINES = ("1", "2", "3")

# (state, reason, billed, held): what a line can become
KINDS: tuple[tuple[State, str | None, str, str], ...] = (
    (State.BILLED, None, "960.00", "0"),
    (State.BILLED, None, "480.00", "0"),
    (State.HELD, "PROJECT_ON_HOLD", "0", "0"),
    (State.PARTIALLY_HELD, "BILLING_CAP_EXCEEDED", "480.00", "480.00"),
    (State.NON_BILLABLE, "NOT_BILLABLE", "0", "0"),
    (State.EXCEPTION, "NO_RATE", "0", "0"),
)


def line(sid: str, kind: int, period: str = "2026-01", customer: str = "CUST-1") -> LineTarget:
    state, reason, billed, held = KINDS[kind]
    return LineTarget(
        source_type=SourceType.TIMESHEET,
        source_id=sid,
        state=state,
        reason=reason,
        contract_id="C1",
        project_id="P1",
        period=period,
        billable_amount=D(billed) + D(held),
        billed_amount=D(billed),
        held_amount=D(held),
        tax_amount=(D(billed) * D("0.20")).quantize(D("0.01")),
        currency="EUR",
        erp_customer_id=customer,
        legal_entity="UK-LTD",
        erp_item_code="SVC-CON",
        revenue_account="4010",
        cost_center="CC-10",
        work_date=date.fromisoformat(f"{period}-02"),
        hours=D("8.00"),
        rate=D("120.00"),
        billable=True,
    )


@dataclass(frozen=True)
class Unit:
    emissions: tuple[Emission, ...]
    covers: tuple[tuple[str, int], ...]

    @property
    def items(self) -> list[Emission | Progress]:
        return [*self.emissions, Progress(self.covers)]


# a move: ("line", line index, kind or -1 for no line state, period index, customer index),
# or ("period", reopen): the reopen of the latest closed period if ``reopen`` and one is
# closed, else the next close (a reopen when every period is closed)
Move = tuple[Any, ...]


class Teller:
    """Turns moves into units, tracking what the engine would know: lines, finals, closes."""

    def __init__(self, partition: str = PSA) -> None:
        self.partition = partition
        self.offset = -1
        self.n = 0
        self.closed: list[str] = []
        self.lines: dict[LineKey, LineTarget] = {}
        self.final: dict[LineKey, str] = {}

    def unit(self, moves: list[Move], gap: int = 1) -> Unit:
        out: list[Emission] = []
        for move in moves:
            out.append(self._period(move[1]) if move[0] == "period" else self._line(*move[1:]))
        self.offset += gap
        return Unit(tuple(out), ((self.partition, self.offset),))

    def _through(self) -> str | None:
        return self.closed[-1] if self.closed else None

    def _line(self, index: int, kind: int, period: int, customer: int) -> Emission:
        self.n += 1
        sid = LINES[index % len(LINES)]
        key: LineKey = ("timesheet", sid)
        new = line(sid, kind, PERIODS[period % 3], f"CUST-{customer % 2}") if kind >= 0 else None
        reopened = self.final.pop(key, None) is not None
        old = self.lines.pop(key, None)
        if new is not None:
            self.lines[key] = new
        update = LineUpdate(key, old, new, reopened=reopened)
        return Emission(update, f"psa:lsn={self.n}", None, self._through())

    def _period(self, reopen: bool) -> Emission:
        self.n += 1
        if self.closed and (reopen or len(self.closed) == len(PERIODS)):
            period = self.closed.pop()
            for key in [k for k, p in self.final.items() if p == period]:
                del self.final[key]
            event = PeriodEvent(REOPEN, period, self._through())
        else:
            period = PERIODS[len(self.closed)]
            self.closed.append(period)
            for key, target in self.lines.items():
                if key not in self.final and becomes_final(target, period):
                    self.final[key] = period
            event = PeriodEvent(CLOSE, period, period)
        return Emission(event, f"erp:lsn={self.n}", None, self._through())


def story(moves: list[list[Move]], partition: str = PSA) -> list[Unit]:
    teller = Teller(partition)
    return [teller.unit(m) for m in moves]


def items_of(units: list[Unit]) -> list[Emission | Progress]:
    return [item for u in units for item in u.items]


def cut(items: list[Any], cuts: list[int]) -> list[list[Any]]:
    """``items`` split before each index in ``cuts`` (empty batches dropped)."""
    bounds = [0, *sorted({c for c in cuts if 0 < c < len(items)}), len(items)]
    return [items[a:b] for a, b in pairwise(bounds) if a < b]


_WALL_CLOCK = ("created_at", "updated_at", "occurred_at")


def erp_state(engine: Engine) -> dict[str, list[Any]]:
    """Ledger (by item and seq), line states, outbox records (in order; recon snapshots left
    out: they follow a timer) and input progress, without the wall-clock fields."""
    tx, s, o, p = (
        t.erp_billing_transactions,
        t.billing_line_state,
        t.billing_outbox,
        t.billing_progress,
    )

    def plain(row: Any) -> dict[str, Any]:
        return {k: v for k, v in dict(row).items() if k not in _WALL_CLOCK}

    with engine.connect() as c:
        ledger = c.execute(select(tx).order_by(tx.c.source_type, tx.c.source_id, tx.c.seq))
        lines = c.execute(select(s).order_by(s.c.source_type, s.c.source_id))
        outbox = c.execute(
            select(o.c.topic, o.c.key, o.c.payload)
            .where(o.c.topic != "recon.snapshots")
            .order_by(o.c.id)
        )
        progress = c.execute(select(p.c.input_partition, p.c.committed_offset))
        return {
            "ledger": [plain(r) for r in ledger.mappings()],
            "lines": [plain(r) for r in lines.mappings()],
            "outbox": [(r.topic, r.key, plain(orjson.loads(r.payload))) for r in outbox],
            "progress": sorted(tuple(r) for r in progress),
        }
