"""Ledger postings: charge, adjustment, reversal, re-charge; deterministic ids."""

from __future__ import annotations

from dataclasses import replace

from dataflows.billing.ledger import Posted, postings, transaction_id
from dataflows.billing.target import LineTarget, State

from .worlds import D, base_rows, line

T1 = ("timesheet", "1")


def billed() -> LineTarget:
    target = line(base_rows(), T1)
    assert target is not None
    return target


def test_first_posting_is_a_charge_with_every_dimension() -> None:
    (entry,) = postings("timesheet", "1", Posted(), billed())
    assert (entry.entry_type, entry.amount, entry.tax_amount) == ("charge", D("1125.00"),
                                                                  D("225.00"))  # fmt: skip
    assert entry.transaction_id == transaction_id("timesheet", "1", 0)
    assert (entry.contract_id, entry.project_id, entry.erp_customer_id, entry.legal_entity) == (
        "C1", "P1", "CUST-1", "UK-LTD")  # fmt: skip
    assert (entry.erp_item_code, entry.revenue_account, entry.cost_center) == (
        "SVC-CON", "4010", "CC-10")  # fmt: skip
    assert (entry.period, entry.hours, entry.rate, entry.currency) == (
        "2024-03", D("7.50"), D("150.00"), "GBP")  # fmt: skip


def test_reaching_the_target_posts_nothing() -> None:
    assert postings("timesheet", "1", Posted(D("1125.00"), D("225.00"), 1), billed()) == ()
    assert postings("timesheet", "1", Posted(), None) == ()


def test_adjustment_changes_a_nonzero_sum() -> None:
    lower = replace(billed(), billed_amount=D("375.00"), tax_amount=D("75.00"),
                    state=State.PARTIALLY_HELD)  # fmt: skip
    (entry,) = postings("timesheet", "1", Posted(D("1125.00"), D("225.00"), 1), lower)
    assert (entry.entry_type, entry.amount, entry.tax_amount) == ("adjustment", D("-750.00"),
                                                                  D("-150.00"))  # fmt: skip
    assert entry.transaction_id == transaction_id("timesheet", "1", 1)


def test_reversal_to_zero_then_recharge() -> None:
    previous = billed()
    posted = Posted(D("1125.00"), D("225.00"), 1)
    (rev,) = postings("timesheet", "1", posted, None, previous=previous)
    assert (rev.entry_type, rev.amount, rev.tax_amount, rev.project_id) == (
        "reversal", D("-1125.00"), D("-225.00"), "P1")  # fmt: skip
    held = replace(previous, state=State.HELD, reason="PROJECT_ON_HOLD", billed_amount=D("0"),
                   tax_amount=D("0"), billable_amount=D("0"))  # fmt: skip
    (rev2,) = postings("timesheet", "1", posted, held)
    assert rev2.entry_type == "reversal"
    posted = posted.plus(rev)
    (again,) = postings("timesheet", "1", posted, previous)
    assert (again.entry_type, again.amount, posted.entries) == ("charge", D("1125.00"), 2)
    assert again.transaction_id == transaction_id("timesheet", "1", 2)


def test_ids_are_deterministic_and_distinct() -> None:
    ids = {transaction_id(t, s, n) for t in ("timesheet", "milestone") for s in ("1", "2")
           for n in range(3)}  # fmt: skip
    assert len(ids) == 12
    assert transaction_id("timesheet", "1", 0) == transaction_id("timesheet", "1", 0)
