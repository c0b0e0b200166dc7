"""``billsync recon audit``'s comparison: ledger sums AND the dimensions of the net posting."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, insert

from dataflows.billing.ledger import Posted, postings
from dataflows.billing.target import LineTarget
from ops.reads.audit.compare import Difference, compare
from sinks.erp import tables as t
from sinks.erp.writer import ErpWriter, _ledger_row

from .test_erp_writer import DIMS, em, target

NOW = datetime(2026, 4, 1, tzinfo=UTC)
KEY = ("timesheet", "7")


@pytest.fixture
def db() -> Iterator[Engine]:
    engine = create_engine("sqlite://")
    ErpWriter(engine, clock=lambda: NOW).ensure_schema()
    yield engine
    engine.dispose()


def audit(db: Engine, want: LineTarget) -> list[Difference]:
    with db.connect() as c:
        return [d for d in compare(c, {KEY: want}, {}) if d.table == "erp_billing_transactions"]


def test_a_ledger_posted_under_the_old_customer_is_a_difference(db: Engine) -> None:
    posted_under = target("960.00", **DIMS)
    ErpWriter(db, clock=lambda: NOW).apply([em(posted_under, "p1")])
    moved = replace(posted_under, erp_customer_id="CUST-9", cost_center="CC-20")
    # the sums are right; the ERP still bills the old customer and cost center
    assert audit(db, moved) == [
        Difference("erp_billing_transactions", "timesheet:7", "net erp_customer_id", "CUST-9",
                   "CUST-1"),
        Difference("erp_billing_transactions", "timesheet:7", "net cost_center", "CC-20",
                   "CC-10"),
    ]  # fmt: skip
    ErpWriter(db, clock=lambda: NOW).apply([em(moved, "p2")])
    assert audit(db, moved) == []


def test_an_adjustment_under_a_new_customer_leaves_the_old_charge_behind(db: Engine) -> None:
    """What the writer posted before the fix: the net is split across two customers."""
    old = target("960.00", **DIMS)
    new = replace(old, erp_customer_id="CUST-9", billed_amount=old.billed_amount * 2,
                  tax_amount=old.tax_amount * 2)  # fmt: skip
    (charge,) = postings(*KEY, Posted(), old)
    (adjustment,) = postings(*KEY, Posted().plus(charge), replace(new, erp_customer_id="CUST-1"))
    adjustment = replace(adjustment, erp_customer_id="CUST-9")
    with db.begin() as c:
        rows = [_ledger_row(charge, 0, "p1", NOW), _ledger_row(adjustment, 1, "p2", NOW)]
        c.execute(insert(t.erp_billing_transactions), rows)
    (diff,) = audit(db, new)
    assert (diff.field, diff.expected, diff.actual) == (
        "net erp_customer_id", "CUST-9", ["CUST-1", "CUST-9"])  # fmt: skip


def test_a_stale_rate_with_the_same_amount_is_a_difference(db: Engine) -> None:
    posted_under = target("960.00", **DIMS)
    ErpWriter(db, clock=lambda: NOW).apply([em(posted_under, "p1")])
    moved = replace(posted_under, hours=Decimal("10.00"), rate=Decimal("96.00"))
    assert [(d.field, d.actual) for d in audit(db, moved)] == [
        ("net hours", Decimal("8.00")),
        ("net rate", Decimal("120.00")),
    ]
