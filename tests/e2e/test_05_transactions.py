"""e2e 05 — a source transaction is applied whole on the real stack (SPEC 4, issue 10).

Why it exists: the ordering stage is proven with testing sources (tests/unit/flow), but only
the real stack has Debezium's transaction metadata, Kafka's interleaving of the per-table
topics and the transaction topic, and the flow reading them. One PSA transaction approves a
timesheet and puts its project on hold (the approval written first): the line must go
straight to held. Applied change by change — or with the approval read from its topic before
the hold from its own — the line would be billed for a moment: a charge and its reversal in
the ledger, a ``billed`` then ``held`` history on ``billing.exceptions``. So:

1. a control line of the same project is billed (the flow has caught up);
2. ONE transaction: timesheet 2 approved, then the project on hold;
3. both lines end held; the approved line has NO ledger entry at all (it never billed), and
   the control line's ledger is its charge and one reversal;
4. ``billsync recon audit`` is clean (including: the source positions of every item's ledger
   entries never go backwards).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal

from sqlalchemy import update

from connectors import sources as src
from tests.e2e.harness import Erp, Flow, Sources, small_firm

D = Decimal


def test_hold_and_approval_in_one_transaction_never_bill(
    make_flow: Callable[[], Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
) -> None:
    base = 2 * 10**12 + int(time.time() * 1000) % 10**7 * 10_000
    control, approved = ("timesheet", str(base + 1)), ("timesheet", str(base + 2))
    flow = make_flow()
    flow.start()
    db = erp_of(flow)
    db.wait_tables(flow)
    small_firm(sources, prefix, start=date(2025, 1, 1), what="e2e tx",
               timesheets=[(base + 1, date(2026, 6, 1), "approved"),
                           (base + 2, date(2026, 6, 1), "submitted")])  # fmt: skip
    db.wait_lines({control: {"state": "billed", "billed_amount": D("800.00")}, approved: None},
                  flow=flow, what="the control line billed")  # fmt: skip

    with sources.psa.begin() as conn:  # ONE transaction, the approval first
        conn.execute(
            update(src.timesheets)
            .where(src.timesheets.c.timesheet_id == base + 2)
            .values(status="approved", approved_at=datetime(2026, 6, 2, 9, tzinfo=UTC))
        )
        conn.execute(
            update(src.projects)
            .where(src.projects.c.project_id == f"{prefix}-PRJ")
            .values(status="on_hold")
        )

    held = {"state": "held", "reason": "PROJECT_ON_HOLD"}
    db.wait_lines({control: held, approved: held}, flow=flow, what="both lines held")
    ledger = db.ledger([control[1], approved[1]])
    assert ledger.get(approved, []) == [], f"the approved line billed for a moment: {ledger}"
    assert [e["entry_type"] for e in ledger[control]] == ["charge", "reversal"]
    assert db.all_ledger_violations() == []
    flow.audit_clean()
