"""Retainer and cap allocation of one contract's candidates (SPEC 2, "Candidates then ...").

Order: (approved_at, timesheet_id) for timesheets and (accepted_at, milestone_id) for
milestones, a NULL timestamp after every timestamp. The SPEC does not say how timesheets and
milestones of one contract share a cap; under its rules they never meet (a timesheet is a
candidate only on a contract not of type ``milestone``, a milestone only on one of type
``milestone``), but the order is total anyway: at equal timestamps timesheets come before
milestones (see :func:`dataflows.billing.rules.order_key`).

- Retainer (``contract_type = retainer``): per calendar month of work_date, the first
  ``retainer_hours_monthly`` hours (NULL = 0) are covered. Milestones have no hours: the
  retainer never covers them.
- Cap (``cap_amount`` not NULL): per contract (``cap_period = contract``, also when NULL) or
  per month; each line bills ``min(billable, cap - billed so far)``, never below 0.
- A candidate whose billable amount is 0 (rate 0, or a residue that rounds to 0) is
  ``non_billable COVERED_BY_RETAINER`` when the retainer covered some of its hours, and
  ``billed`` with zero amounts otherwise (nothing to bill, nothing held).

Allocation is a pure function of the contract row and the candidates: :func:`allocate` is
what the batch oracle runs. The incremental engine keeps the same computation as
:class:`Prefix` sequences per group (:class:`Book`) and recomputes only from the changed
order position on; the property tests compare the two.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal

from billsync.model import Contract
from dataflows.billing.money import CENT, ZERO, q2
from dataflows.billing.rules import Candidate, OrderKey, Reason
from dataflows.billing.target import LineKey, LineTarget, State

WHOLE_CONTRACT = "*"  # the group of a contract whose cap spans the whole contract

# what allocation reads of a contract: (retainer?, monthly allowance, cap, cap per month?)
Config = tuple[bool, Decimal, Decimal | None, bool]


def contract_wide(contract: Contract) -> bool:
    """True when one cap spans all months: allocation must see every candidate at once."""
    return contract.cap_amount is not None and contract.cap_period != "month"


def group_of(contract: Contract, month: str) -> str:
    """The allocation group of a candidate's month: independent groups allocate separately."""
    return WHOLE_CONTRACT if contract_wide(contract) else month


def config_of(contract: Contract) -> Config:
    """The contract columns allocation depends on (a negative allowance counts as 0)."""
    allowance = contract.retainer_hours_monthly or ZERO
    if allowance < 0:
        allowance = ZERO
    return (
        contract.contract_type == "retainer",
        allowance,
        contract.cap_amount,
        contract.cap_period == "month",
    )


def retained(cand: Candidate) -> bool:
    """A candidate the retainer can cover (a timesheet with hours and a rate)."""
    return cand.hours is not None and cand.rate is not None


def billable_of(cand: Candidate, covered: Decimal) -> Decimal:
    """The amount left to bill after the retainer covered ``covered`` hours."""
    if covered > 0:
        assert cand.hours is not None and cand.rate is not None  # only retained lines
        return q2((cand.hours - covered) * cand.rate)
    return cand.gross


def _q2(value: Decimal) -> Decimal:
    """:func:`~dataflows.billing.money.q2` for a value known to be a Decimal (the hot path)."""
    return value.quantize(CENT, ROUND_HALF_UP)


def line_of(cand: Candidate, covered: Decimal, billable: Decimal, billed: Decimal) -> LineTarget:
    """The final target of a candidate from its allocation figures."""
    held = billable - billed
    if held > 0:
        state = State.PARTIALLY_HELD if billed > 0 else State.HELD
        reason: str | None = Reason.BILLING_CAP_EXCEEDED
    elif billable == 0 and covered > 0:
        state, reason = State.NON_BILLABLE, Reason.COVERED_BY_RETAINER
    else:
        if covered == 0 and billed == cand.gross and held == 0:
            return cand.target  # billed in full: the candidate's own target (see rules)
        state, reason = State.BILLED, None
    t = cand.target
    return LineTarget(
        source_type=t.source_type,
        source_id=t.source_id,
        state=state,
        reason=reason,
        contract_id=t.contract_id,
        project_id=t.project_id,
        period=t.period,
        billable_amount=_q2(billable),
        billed_amount=_q2(billed),
        held_amount=_q2(held),
        tax_amount=_q2(billed * cand.tax_rate),
        covered_hours=_q2(covered),
        currency=t.currency,
        erp_customer_id=t.erp_customer_id,
        legal_entity=t.legal_entity,
        erp_item_code=t.erp_item_code,
        revenue_account=t.revenue_account,
        cost_center=t.cost_center,
        work_date=t.work_date,
        hours=t.hours,
        rate=t.rate,
        billable=t.billable,
    )


def allocate(
    contract: Contract,
    candidates: Iterable[Candidate],
    *,
    current: Mapping[LineKey, LineTarget] | None = None,
    fresh: Collection[LineKey] = (),
    final_use: Mapping[str, tuple[Decimal, Decimal]] | None = None,
) -> dict[LineKey, LineTarget]:
    """The final targets of ``candidates`` (all of one contract, or one month group of it).

    With ``current`` (the targets already held) only targets that differ are returned: a
    member whose allocation figures are unchanged and whose candidate is not in ``fresh``
    (candidates that changed since ``current`` was computed) keeps its current target.
    ``final_use`` (month -> (covered hours, billed amount)) is what the contract's final
    items consumed (SPEC 2b): open candidates are allocated against what it leaves.
    """
    ordered = sorted(candidates, key=lambda c: c.order)
    retainer, allowance, cap, per_month = config_of(contract)
    hours_used: dict[str, Decimal] = {}
    billed_in: dict[str, Decimal] = {}
    for month, (hours, billed) in (final_use or {}).items():
        hours_used[month] = hours
        group = month if per_month else WHOLE_CONTRACT
        billed_in[group] = billed_in.get(group, ZERO) + billed
    out: dict[LineKey, LineTarget] = {}
    for cand in ordered:
        covered = ZERO
        billable = cand.gross
        if retainer and cand.hours is not None and cand.rate is not None:
            left = allowance - hours_used.get(cand.month, ZERO)
            covered = min(cand.hours, max(left, ZERO))
            hours_used[cand.month] = hours_used.get(cand.month, ZERO) + covered
            if covered > 0:
                billable = q2((cand.hours - covered) * cand.rate)
        billed = billable
        if cap is not None:
            period = cand.month if per_month else WHOLE_CONTRACT
            room = max(cap - billed_in.get(period, ZERO), ZERO)
            billed = min(billable, room)
            billed_in[period] = billed_in.get(period, ZERO) + billed
        held = billable - billed
        key = cand.target.key
        if current is not None and key not in fresh:
            cur = current.get(key)
            if (
                cur is not None
                and cur.billed_amount == billed
                and cur.billable_amount == billable
                and cur.held_amount == held
                and cur.covered_hours == covered
            ):
                continue  # same figures, same candidate: state, reason and tax are the same
        out[key] = line_of(cand, covered, billable, billed)
    return out


_UNSET = Decimal("NaN")  # the take of a member not computed yet (never equal to a take)
Entry = tuple[OrderKey, LineKey, Decimal]  # (order, item, amount it asks for)
Removal = tuple[OrderKey, LineKey]


class Prefix:
    """One allocation group in order, each member taking ``min(x, max(limit - used, 0))``.

    Retainer coverage (x = hours, limit = the month's allowance) and the cap (x = billable,
    limit = the cap) are the same prefix computation over the members in order. Members are
    kept sorted by order key in parallel lists with what each asks for (``xs``), what it got
    (``takes``) and the running total after it (``after``). A change at order position p
    recomputes from p on and stops at the first later member whose running total after it is
    what it was before the change (every later member's result is then unchanged too).
    Plain lists, picklable; the batch oracle keeps using :func:`allocate`.
    """

    __slots__ = ("after", "items", "keys", "limit", "takes", "xs")

    def __init__(self, limit: Decimal) -> None:
        self.limit = limit
        self.keys: list[OrderKey] = []
        self.items: list[LineKey] = []
        self.xs: list[Decimal] = []
        self.takes: list[Decimal] = []
        self.after: list[Decimal] = []

    def __getstate__(self) -> tuple[Decimal, list[OrderKey], list[LineKey], list[Decimal],
                                    list[Decimal], list[Decimal]]:  # fmt: skip
        return (self.limit, self.keys, self.items, self.xs, self.takes, self.after)

    def __setstate__(self, state: tuple[Decimal, list[OrderKey], list[LineKey], list[Decimal],
                                        list[Decimal], list[Decimal]]) -> None:  # fmt: skip
        self.limit, self.keys, self.items, self.xs, self.takes, self.after = state

    def __len__(self) -> int:
        return len(self.keys)

    def _at(self, order: OrderKey, item: LineKey) -> int:
        i = bisect_left(self.keys, order)
        if i == len(self.keys) or self.items[i] != item:
            raise KeyError(item)
        return i

    def x_of(self, order: OrderKey, item: LineKey) -> Decimal:
        return self.xs[self._at(order, item)]

    def take_of(self, order: OrderKey, item: LineKey) -> Decimal:
        return self.takes[self._at(order, item)]

    def update(
        self, removes: Iterable[tuple[OrderKey, LineKey]], inserts: Iterable[Entry]
    ) -> dict[LineKey, Decimal]:
        """Remove then insert members; the new take of every inserted or changed member.

        A member whose amount changed is removed and inserted again (same order key).
        """
        keys, items, xs, takes, after = self.keys, self.items, self.xs, self.takes, self.after
        first = len(keys)
        last = -1  # the walk may stop only after this position
        removed = []
        for order, item in removes:
            i = self._at(order, item)
            del keys[i], items[i], xs[i], takes[i], after[i]
            removed.append(order)
        added = []
        for order, item, x in inserts:
            i = bisect_left(keys, order)
            keys.insert(i, order)
            items.insert(i, item)
            xs.insert(i, x)
            takes.insert(i, _UNSET)  # differs from any take: an inserted member is reported
            after.insert(i, ZERO)
            added.append(order)
        for order in removed:  # the walk starts where a removed member was
            i = bisect_left(keys, order)
            first = min(first, i)
            last = max(last, i - 1)
        for order in added:  # the walk must pass an inserted member
            i = bisect_left(keys, order)
            first = min(first, i)
            last = max(last, i)
        return self._run(first, last)

    def _run(self, first: int, last: int) -> dict[LineKey, Decimal]:
        keys, items, xs, takes, after = self.keys, self.items, self.xs, self.takes, self.after
        limit = self.limit
        out: dict[LineKey, Decimal] = {}
        used = after[first - 1] if first > 0 else ZERO
        for i in range(first, len(keys)):
            room = limit - used
            if room < 0:
                room = ZERO
            x = xs[i]
            take = min(x, room)
            now = used + take
            if take != takes[i]:
                out[items[i]] = take
                takes[i] = take
            if i > last and now == after[i]:
                break  # same running total after an old member as before: nothing later changes
            after[i] = now
            used = now
        return out

    def relimit(self, limit: Decimal) -> dict[LineKey, Decimal]:
        """A new limit (a cap raised or lowered): every member whose take changed.

        Equal running totals say nothing under another limit: the walk covers every member.
        """
        self.limit = limit
        return self._run(0, len(self.keys) - 1)

    def fill(self, entries: list[Entry]) -> dict[LineKey, Decimal]:
        """Replace all members by ``entries``; every member's take."""
        entries.sort(key=_first)
        self.keys = [e[0] for e in entries]
        self.items = [e[1] for e in entries]
        self.xs = [e[2] for e in entries]
        self.takes = [_UNSET] * len(entries)
        self.after = [ZERO] * len(entries)
        return self._run(0, len(entries) - 1)


def _first(entry: Entry) -> OrderKey:
    return entry[0]


class Book:
    """One contract's incremental allocation: a :class:`Prefix` per retainer month (x = hours)
    and per cap period (x = billable), valid for ``config`` (rebuilt when it changes)."""

    __slots__ = ("caps", "config", "retainer")

    def __init__(self, config: Config) -> None:
        self.config = config
        self.retainer: dict[str, Prefix] = {}
        self.caps: dict[str, Prefix] = {}

    def __getstate__(self) -> tuple[Config, dict[str, Prefix], dict[str, Prefix]]:
        return (self.config, self.retainer, self.caps)

    def __setstate__(self, state: tuple[Config, dict[str, Prefix], dict[str, Prefix]]) -> None:
        self.config, self.retainer, self.caps = state

    def period(self, cand: Candidate) -> str:
        """The cap period of a candidate under this book's config."""
        return cand.month if self.config[3] else WHOLE_CONTRACT
