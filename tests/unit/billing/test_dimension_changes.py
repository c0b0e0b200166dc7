"""A ledger dimension change alone (same amounts) reaches the writer and is posted.

The engine must emit a LineUpdate when only a dimension of a billed line changes — through a
referenced row (account, project, employee) or a mapping change — for a contract billed in
full and for one with a cap and a retainer (where unchanged figures of an unchanged
candidate short-circuit). :func:`postings` must then reverse under the old dimensions and
charge under the new ones.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from billsync.change import Op
from billsync.model import Row
from dataflows.billing.engine import BillingEngine
from dataflows.billing.ledger import (
    BILLING_DIMENSIONS,
    DIMENSIONS,
    Posted,
    dimension_mismatches,
    net_posting,
    postings,
)
from dataflows.billing.mappings import Mappings
from dataflows.billing.target import LineTarget

from .changes import upsert
from .worlds import MAPPINGS, D, base_rows

T1 = ("timesheet", "1")
REMAPPED = Mappings.of(
    {"CONSULTANT": ("SVC-CX", "4999"), "MILESTONE": ("FIX-MLS", "4100")}, {"GB": D("0.20")}
)
# (case, row to change, column, new value, dimension expected to follow)
ROW_CHANGES = [
    ("new ERP customer", "A1", "erp_customer_id", "CUST-9", "erp_customer_id", "CUST-9"),
    ("new legal entity", "P1", "legal_entity", "DE-GMBH", "legal_entity", "DE-GMBH"),
    ("new cost center", "E1", "cost_center", "CC-20", "cost_center", "CC-20"),
]
CONTRACTS = {
    "billed in full": {},
    "capped, with retainer": {
        "cap_amount": D("50000"),
        "cap_period": "contract",  # a cap with no period is UNEXPECTED_SOURCE_VALUE
        "retainer_hours_monthly": D("2"),
        "contract_type": "retainer",
    },
}


def loaded(rows: dict[str, Row], contract: dict[str, Any]) -> BillingEngine:
    rows = dict(rows)
    rows["C1"] = replace(rows["C1"], **contract)
    engine = BillingEngine(MAPPINGS)
    for row in rows.values():
        engine.apply(upsert(row, Op.READ))
    assert engine.lines[T1].billed_amount > 0
    return engine


@pytest.mark.parametrize("contract", CONTRACTS.values(), ids=list(CONTRACTS))
@pytest.mark.parametrize(
    ("name", "column", "value", "dim", "expected"),
    [c[1:] for c in ROW_CHANGES],
    ids=[c[0] for c in ROW_CHANGES],
)
def test_a_referenced_row_dimension_change_is_emitted(
    contract: dict[str, Any], name: str, column: str, value: str, dim: str, expected: str
) -> None:
    rows = base_rows()
    engine = loaded(rows, contract)
    before = engine.lines[T1]
    delta = engine.apply(upsert(replace(rows[name], **{column: value})))
    (update,) = [u for u in delta.lines if u.key == T1]
    assert update.old == before and update.new is not None
    assert getattr(update.new, dim) == expected
    assert update.new.billed_amount == before.billed_amount  # the amounts did not move


@pytest.mark.parametrize("contract", CONTRACTS.values(), ids=list(CONTRACTS))
def test_a_mapping_change_of_item_code_and_account_is_emitted(contract: dict[str, Any]) -> None:
    engine = loaded(base_rows(), contract)
    delta = engine.with_mappings(REMAPPED)
    (update,) = [u for u in delta.lines if u.key == T1]
    assert update.new is not None
    assert (update.new.erp_item_code, update.new.revenue_account) == ("SVC-CX", "4999")


def billed() -> LineTarget:
    return loaded(base_rows(), {}).lines[T1]


# (case, changed fields) -> reversal under the old, charge under the new dimensions
REBILLS = [
    ("customer", {"erp_customer_id": "CUST-9"}),
    ("legal entity", {"legal_entity": "DE-GMBH"}),
    ("item code", {"erp_item_code": "SVC-CX"}),
    ("revenue account", {"revenue_account": "4999"}),
    ("cost center", {"cost_center": "CC-20"}),
    ("contract", {"contract_id": "C9"}),
    ("rate and hours, same amount", {"hours": D("9.00"), "rate": D("125.00")}),
    ("work date, same month", {"work_date": billed().work_date.replace(day=20)}),  # type: ignore[union-attr]  # the line has a work_date
]


@pytest.mark.parametrize("changes", [c[1] for c in REBILLS], ids=[c[0] for c in REBILLS])
def test_same_amounts_new_dimension_is_reversed_and_recharged(changes: dict[str, Any]) -> None:
    old = billed()
    new = replace(old, **changes)
    (first,) = postings("timesheet", "1", Posted(), old)
    posted = Posted().plus(first)
    rev, charge = postings("timesheet", "1", posted, new, previous=old)
    assert (rev.entry_type, rev.amount, rev.tax_amount) == ("reversal", -first.amount,
                                                            -first.tax_amount)  # fmt: skip
    assert (charge.entry_type, charge.amount) == ("charge", first.amount)
    for f, v in changes.items():
        assert (getattr(rev, f), getattr(charge, f)) == (getattr(old, f), v)
    assert posted.plus(rev).plus(charge).entries == 3
    # posted again with the new dimensions as the net posting's: nothing more
    assert postings("timesheet", "1", posted.plus(rev).plus(charge), new, previous=new) == ()


def test_a_billing_dimension_change_with_an_amount_change_is_rebilled_too() -> None:
    old = billed()
    new = replace(old, erp_customer_id="CUST-9", billed_amount=D("500.00"), tax_amount=D("100"))
    rev, charge = postings("timesheet", "1", Posted(D("1125.00"), D("225.00"), 1), new,
                           previous=old)  # fmt: skip
    assert (rev.erp_customer_id, rev.amount) == ("CUST-1", D("-1125.00"))
    assert (charge.erp_customer_id, charge.amount) == ("CUST-9", D("500.00"))


def test_a_detail_change_with_an_amount_change_is_one_adjustment() -> None:
    old = billed()
    new = replace(old, hours=D("10.00"), billed_amount=D("1500.00"), tax_amount=D("300.00"))
    (adj,) = postings("timesheet", "1", Posted(D("1125.00"), D("225.00"), 1), new, previous=old)
    assert (adj.entry_type, adj.amount, adj.hours) == ("adjustment", D("375.00"), D("10.00"))


def test_a_reversal_lands_under_the_posted_dimensions() -> None:
    old = billed()
    held = replace(old, erp_customer_id=None, billed_amount=D("0"), tax_amount=D("0"))
    (rev,) = postings("timesheet", "1", Posted(D("1125.00"), D("225.00"), 1), held, previous=old)
    assert (rev.entry_type, rev.erp_customer_id) == ("reversal", "CUST-1")


def _row(entry: Any) -> dict[str, Any]:
    return {f: getattr(entry, f) for f in (*DIMENSIONS, "amount", "tax_amount", "entry_type")}


def test_net_posting_is_the_entries_since_the_newest_charge() -> None:
    old = billed()
    new = replace(old, erp_customer_id="CUST-9")
    (charge,) = postings("timesheet", "1", Posted(), old)
    rebill = postings("timesheet", "1", Posted().plus(charge), new, previous=old)
    rows = [_row(e) for e in (charge, *rebill)]
    assert dimension_mismatches(new, net_posting(rows)) == ()
    assert dimension_mismatches(old, net_posting(rows)) == (
        ("erp_customer_id", "CUST-1", "CUST-9"),
    )
    # the pre-fix ledger: an adjustment under the new customer leaves the old one's charge
    stale = [_row(charge), {**_row(charge), "erp_customer_id": "CUST-9",
                            "entry_type": "adjustment", "amount": D("1.00")}]  # fmt: skip
    (mismatch,) = dimension_mismatches(replace(new, billed_amount=D("1126.00")), net_posting(stale))
    assert mismatch == ("erp_customer_id", "CUST-9", ["CUST-1", "CUST-9"])
    assert "erp_customer_id" in BILLING_DIMENSIONS
