"""Pure posting logic: what to append to the ERP ledger so an item nets to its target.

Given what ``erp_billing_transactions`` already holds for one source item (:class:`Posted`:
sum of amount, sum of tax_amount, number of entries) and the item's new target (or None: no
line state, the ledger nets to 0), :func:`postings` returns the entries to append. Applying
it to the sums the ERP *actually holds*, inside the same database transaction as the
append, makes every replay idempotent: a second run sees the target already reached and
appends nothing.

Entry types:

- ``charge``: the item holds nothing (first posting, or re-posting after a full reversal);
- ``adjustment``: a non-zero posted sum changes to another non-zero sum;
- ``reversal``: the target amount becomes 0: the remaining sums are reversed.

``transaction_id`` is ``uuid5(NAMESPACE, "source_type:source_id:n")`` where ``n`` is the
entry's sequence number for that item (0 for the first): a replay computes the same ids, so
a unique key on transaction_id refuses a duplicate even if the sums were read stale.

Amounts are deltas; the dimensions (hours, rate, period, ...) describe the line as of the
entry: the new target's for a charge or an adjustment, the posted ones (``previous``) for a
reversal — a reversal lands where the charge it takes back was posted.

Dimension changes (``previous`` = the dimensions the item's net posting carries, ``target``
the new ones; only when the ledger holds a non-zero net for the item):

- a change of a :data:`BILLING_DIMENSIONS` field (who is billed, by which entity, for what,
  on which account, cost center, contract, project, period or currency) is posted as a
  **reversal under the old dimensions and a charge under the new ones**, with or without an
  amount change: every per-dimension sum (per customer, per account, per (project, period)
  ...) then nets to what the target says, which an adjustment under the new dimensions
  would not do (the old customer would keep the charge);
- a change of a :data:`DETAIL_DIMENSIONS` field (work_date, hours, rate: what the quantity
  was, not where it is billed) together with an amount change is an adjustment carrying the
  new details; with the **same amounts** (a rate change 8 h x 100 -> 10 h x 80), it is a
  reversal and a re-charge too, so the ledger never keeps stale details on a current charge.

So the item's **net posting** — its entries from its newest charge on (a charge is posted
exactly when the item's ledger nets to zero) — always carries the target's billing
dimensions in every entry, and its newest entry carries every dimension of the target
(:func:`net_dimensions`). ``billsync recon audit`` checks exactly that.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from dataflows.billing.money import ZERO, q2
from dataflows.billing.target import LineTarget

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "billsync:erp_billing_transactions")
CHARGE = "charge"
ADJUSTMENT = "adjustment"
REVERSAL = "reversal"

# the dimensions finance bills by: a change is a reversal here and a charge there
BILLING_DIMENSIONS = (
    "contract_id",
    "project_id",
    "period",
    "currency",
    "erp_customer_id",
    "legal_entity",
    "erp_item_code",
    "revenue_account",
    "cost_center",
)
# what the billed quantity was: carried by an adjustment; re-charged when amounts are equal
DETAIL_DIMENSIONS = ("work_date", "hours", "rate")
DIMENSIONS = BILLING_DIMENSIONS + DETAIL_DIMENSIONS


@dataclass(frozen=True, slots=True)
class Posted:
    """What the ledger holds for one item."""

    amount: Decimal = ZERO
    tax_amount: Decimal = ZERO
    entries: int = 0

    def plus(self, entry: LedgerEntry) -> Posted:
        return Posted(self.amount + entry.amount, self.tax_amount + entry.tax_amount,
                      self.entries + 1)  # fmt: skip


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """One ``erp_billing_transactions`` row (SPEC 3) minus source_position and created_at."""

    transaction_id: str
    source_type: str
    source_id: str
    contract_id: str | None
    project_id: str | None
    erp_customer_id: str | None
    legal_entity: str | None
    erp_item_code: str | None
    revenue_account: str | None
    cost_center: str | None
    work_date: date | None
    period: str | None
    hours: Decimal | None
    rate: Decimal | None
    amount: Decimal
    tax_amount: Decimal
    currency: str | None
    entry_type: str


def transaction_id(source_type: str, source_id: str, sequence: int) -> str:
    """The deterministic id of an item's ``sequence``-th entry (0-based)."""
    return str(uuid.uuid5(NAMESPACE, f"{source_type}:{source_id}:{sequence}"))


def changed_dimensions(previous: LineTarget, target: LineTarget) -> tuple[str, ...]:
    """The ledger dimensions (:data:`DIMENSIONS`) in which ``target`` differs from ``previous``."""
    return tuple(f for f in DIMENSIONS if getattr(previous, f) != getattr(target, f))


def postings(
    source_type: str,
    source_id: str,
    posted: Posted,
    target: LineTarget | None,
    *,
    previous: LineTarget | None = None,
) -> tuple[LedgerEntry, ...]:
    """The entries that take ``posted`` to ``target``'s billed and tax sums and dimensions.

    ``previous`` carries the dimensions the item's net posting was made under (see the module
    docstring): zero or one entry when they stay, a reversal and a charge when they move.
    """
    if _rebill(posted, previous, target):
        reversal = _posting(source_type, source_id, posted, None, previous)
        return reversal + _posting(source_type, source_id, posted.plus(reversal[0]), target, None)
    return _posting(source_type, source_id, posted, target, previous)


def _rebill(posted: Posted, previous: LineTarget | None, target: LineTarget | None) -> bool:
    if previous is None or target is None or (posted.amount == 0 and posted.tax_amount == 0):
        return False
    if target.billed_amount == 0 and target.tax_amount == 0:
        return False  # a plain reversal (under the posted dimensions) takes it all back
    moved = changed_dimensions(previous, target)
    if any(f in BILLING_DIMENSIONS for f in moved):
        return True
    same_amounts = target.billed_amount == posted.amount and target.tax_amount == posted.tax_amount
    return bool(moved) and same_amounts


def _posting(
    source_type: str,
    source_id: str,
    posted: Posted,
    target: LineTarget | None,
    previous: LineTarget | None,
) -> tuple[LedgerEntry, ...]:
    """Zero or one entry from ``posted`` to ``target``'s sums (no dimension logic)."""
    want_amount = target.billed_amount if target is not None else ZERO
    want_tax = target.tax_amount if target is not None else ZERO
    amount = q2(want_amount - posted.amount)
    tax = q2(want_tax - posted.tax_amount)
    if amount == 0 and tax == 0:
        return ()
    if posted.amount == 0 and posted.tax_amount == 0:
        kind = CHARGE
    elif want_amount == 0 and want_tax == 0:
        kind = REVERSAL
    else:
        kind = ADJUSTMENT
    if kind == REVERSAL:
        dims = previous if previous is not None else target
    else:
        dims = target if target is not None else previous
    return (
        LedgerEntry(
            transaction_id=transaction_id(source_type, source_id, posted.entries),
            source_type=source_type,
            source_id=source_id,
            contract_id=dims.contract_id if dims else None,
            project_id=dims.project_id if dims else None,
            erp_customer_id=dims.erp_customer_id if dims else None,
            legal_entity=dims.legal_entity if dims else None,
            erp_item_code=dims.erp_item_code if dims else None,
            revenue_account=dims.revenue_account if dims else None,
            cost_center=dims.cost_center if dims else None,
            work_date=dims.work_date if dims else None,
            period=dims.period if dims else None,
            hours=dims.hours if dims else None,
            rate=dims.rate if dims else None,
            amount=amount,
            tax_amount=tax,
            currency=dims.currency if dims else None,
            entry_type=kind,
        ),
    )


@dataclass(frozen=True, slots=True)
class NetPosting:
    """What the ledger holds for one item: its sums, and the dimensions of its net posting.

    ``billing`` holds the :data:`BILLING_DIMENSIONS` values of every entry since the item's
    newest charge (one tuple when the net posting is consistent), ``newest`` the
    :data:`DIMENSIONS` values of its newest entry.
    """

    amount: Decimal = ZERO
    tax_amount: Decimal = ZERO
    entries: int = 0
    billing: frozenset[tuple[Any, ...]] = frozenset()
    newest: tuple[Any, ...] = ()


def net_posting(entries: Iterable[Mapping[Any, Any]]) -> NetPosting:
    """Fold one item's ledger rows, in ``seq`` order, into its :class:`NetPosting`."""
    amount = tax = ZERO
    count = 0
    billing: set[tuple[Any, ...]] = set()
    newest: tuple[Any, ...] = ()
    for e in entries:
        amount += e["amount"]
        tax += e["tax_amount"]
        count += 1
        if e["entry_type"] == CHARGE:
            billing = set()
        billing.add(tuple(e[f] for f in BILLING_DIMENSIONS))
        newest = tuple(e[f] for f in DIMENSIONS)
    return NetPosting(amount, tax, count, frozenset(billing), newest)


def dimension_mismatches(target: LineTarget, net: NetPosting) -> tuple[tuple[str, Any, Any], ...]:
    """``(dimension, expected, actual)`` where the net posting does not carry ``target``'s
    dimensions: every entry since the newest charge must carry its billing dimensions, the
    newest entry every dimension. Empty when the ledger nets to zero (nothing is billed, so
    nothing is billed under the wrong dimensions)."""
    if net.amount == 0 and net.tax_amount == 0:
        return ()
    out: list[tuple[str, Any, Any]] = []
    for i, f in enumerate(DIMENSIONS):
        want = getattr(target, f)
        if f in BILLING_DIMENSIONS:
            seen = {dims[i] for dims in net.billing}
            if seen != {want}:
                actual = seen.pop() if len(seen) == 1 else sorted(seen, key=str)
                out.append((f, want, actual))
        elif net.newest[i] != want:
            out.append((f, want, net.newest[i]))
    return tuple(out)
