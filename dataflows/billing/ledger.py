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
entry (the new target's, or for a reversal to no line state the previous target's).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from dataflows.billing.money import ZERO, q2
from dataflows.billing.target import LineTarget

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "billsync:erp_billing_transactions")
CHARGE = "charge"
ADJUSTMENT = "adjustment"
REVERSAL = "reversal"


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


def postings(
    source_type: str,
    source_id: str,
    posted: Posted,
    target: LineTarget | None,
    *,
    previous: LineTarget | None = None,
) -> tuple[LedgerEntry, ...]:
    """The entries (zero or one) that take ``posted`` to ``target``'s billed and tax sums."""
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
