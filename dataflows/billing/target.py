"""The target state of SPEC section 2/3 as values: what a line should be, and its changes.

A :class:`LineTarget` is the full target of one source item (an approved timesheet line or an
accepted milestone): its ``billing_line_state`` row plus the dimensions its ledger entries
carry. It is a pure function of the source rows and the mappings, so it holds no source
position: the position of the change that produced it travels beside it in
:class:`LineUpdate`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

ZERO = Decimal("0.00")


class SourceType(enum.StrEnum):
    TIMESHEET = "timesheet"
    MILESTONE = "milestone"


class State(enum.StrEnum):
    BILLED = "billed"
    PARTIALLY_HELD = "partially_held"
    HELD = "held"
    EXCEPTION = "exception"
    NON_BILLABLE = "non_billable"


# states that are "the exception queue" (SPEC 3, billing.exceptions)
QUEUE_STATES = frozenset({State.HELD, State.EXCEPTION, State.PARTIALLY_HELD})

LineKey = tuple[str, str]  # (source_type, source_id)


@dataclass(frozen=True, slots=True)
class LineTarget:
    """One ``billing_line_state`` row (SPEC 3) plus its ledger dimensions."""

    source_type: SourceType
    source_id: str
    state: State
    reason: str | None  # None exactly when state is BILLED
    contract_id: str | None  # the project's contract_id; None when the project is unknown
    project_id: str | None  # the item's own project_id
    period: str | None  # YYYY-MM of work_date (timesheet) / accepted_at UTC (milestone)
    billable_amount: Decimal = ZERO  # after retainer coverage, before the cap; 0 if no candidate
    billed_amount: Decimal = ZERO
    held_amount: Decimal = ZERO  # only the part held by the cap
    tax_amount: Decimal = ZERO
    covered_hours: Decimal = ZERO
    currency: str | None = None  # the contract's currency when known
    # ledger dimensions (erp_billing_transactions); None where not known
    erp_customer_id: str | None = None
    legal_entity: str | None = None
    erp_item_code: str | None = None
    revenue_account: str | None = None
    cost_center: str | None = None
    work_date: date | None = None  # timesheet work_date; milestone: UTC date of accepted_at
    hours: Decimal | None = None  # timesheet hours; None for milestones
    rate: Decimal | None = None  # the hourly rate applied; None when not a candidate
    billable: bool | None = None  # timesheet billable flag (recon billable_hours)

    @property
    def key(self) -> LineKey:
        return (self.source_type.value, self.source_id)


@dataclass(frozen=True, slots=True)
class ScheduleLine:
    """One ``invoice_schedule`` row: every milestone that is not cancelled (SPEC 2)."""

    milestone_id: str
    contract_id: str | None
    project_id: str | None
    due_date: date | None
    amount: Decimal | None
    currency: str | None
    status: str | None


@dataclass(frozen=True, slots=True)
class LineUpdate:
    """A line's target changed: ``old``/``new`` None mean "no line state" (ledger nets to 0).

    ``released`` marks an item that was final, or waited in a reopened period, and is open
    again (SPEC 2b): the flow no longer knew its target, so ``old`` is None and ``new`` may
    be None too; the ERP holds what it was. ``reopened`` is set when a change of the item's
    own row ended its finality (a ``CHANGED_AFTER_CLOSE`` correction).
    """

    key: LineKey
    old: LineTarget | None
    new: LineTarget | None
    released: bool = False
    reopened: bool = False


@dataclass(frozen=True, slots=True)
class ScheduleUpdate:
    milestone_id: str
    old: ScheduleLine | None
    new: ScheduleLine | None


@dataclass(frozen=True, slots=True)
class PeriodEvent:
    """A close or reopen of an accounting period (SPEC 2b), at the point of the stream where
    the flow met it. ``closed_through`` is the latest closed period after the event."""

    kind: str  # "close" | "reopen"
    period: str
    closed_through: str | None


@dataclass(frozen=True, slots=True)
class Delta:
    """What one change (or a re-evaluation) did to the target state."""

    lines: tuple[LineUpdate, ...] = ()
    schedule: tuple[ScheduleUpdate, ...] = ()
    notes: tuple[str, ...] = field(default=())  # e.g. "duplicate change ignored"
    period: PeriodEvent | None = None  # a close or reopen: applied before ``lines``

    def __bool__(self) -> bool:
        return bool(self.lines or self.schedule or self.period)
