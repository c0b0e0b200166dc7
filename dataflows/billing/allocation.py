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

Allocation is a pure function of the contract row and the candidates, so the engine may
re-run it for a whole group (:func:`group_of`) whenever one member changes.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import replace
from decimal import Decimal

from dataflows.billing.money import ZERO, q2
from dataflows.billing.rules import Candidate, Reason
from dataflows.billing.target import LineKey, LineTarget, State
from dataflows.model import Contract

WHOLE_CONTRACT = "*"  # the group of a contract whose cap spans the whole contract


def contract_wide(contract: Contract) -> bool:
    """True when one cap spans all months: allocation must see every candidate at once."""
    return contract.cap_amount is not None and contract.cap_period != "month"


def group_of(contract: Contract, month: str) -> str:
    """The allocation group of a candidate's month: independent groups allocate separately."""
    return WHOLE_CONTRACT if contract_wide(contract) else month


def allocate(
    contract: Contract,
    candidates: Iterable[Candidate],
    *,
    current: Mapping[LineKey, LineTarget] | None = None,
    fresh: Collection[LineKey] = (),
) -> dict[LineKey, LineTarget]:
    """The final targets of ``candidates`` (all of one contract, or one month group of it).

    With ``current`` (the targets already held) only targets that differ are returned: a
    member whose allocation figures are unchanged and whose candidate is not in ``fresh``
    (candidates that changed since ``current`` was computed) keeps its current target.
    """
    ordered = sorted(candidates, key=lambda c: c.order)
    retainer = contract.contract_type == "retainer"
    allowance = contract.retainer_hours_monthly or ZERO
    if allowance < 0:
        allowance = ZERO
    cap = contract.cap_amount
    per_month = contract.cap_period == "month"
    hours_used: dict[str, Decimal] = {}
    billed_in: dict[str, Decimal] = {}
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
        if held > 0:
            state = State.PARTIALLY_HELD if billed > 0 else State.HELD
            reason: str | None = Reason.BILLING_CAP_EXCEEDED
        elif billable == 0 and covered > 0:
            state, reason = State.NON_BILLABLE, Reason.COVERED_BY_RETAINER
        else:
            state, reason = State.BILLED, None
        out[key] = replace(
            cand.target,
            state=state,
            reason=reason,
            billable_amount=q2(billable),
            billed_amount=q2(billed),
            held_amount=q2(held),
            tax_amount=q2(billed * cand.tax_rate),
            covered_hours=q2(covered),
        )
    return out
