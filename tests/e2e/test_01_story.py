"""e2e 01 — the billing story on the real stack (issue 4, "Done when", first bullet).

Why it exists: the unit and property tests prove the core against the batch oracle; only
this proves the *product*: rows written by the PSA and CRM applications travel through
Debezium, Kafka, the registry, the typed edge, the engine and the ERP writer and end as the
line states and ledger SPEC section 2 demands — every rule and reason, the cap re-allocated
by a late line, a project moving contract, an amendment opened and approved, a deleted
approved line, milestones — and ``billsync recon audit`` then finds nothing to report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from sqlalchemy import text

from tests.e2e.harness import CLUSTER_ENV, CLUSTERS, Erp, Flow, Sources
from tests.e2e.story import Story, ledger_problems

REASONS = {
    "INVALID_HOURS",
    "NOT_BILLABLE",
    "PROJECT_UNKNOWN",
    "EMPLOYEE_UNKNOWN",
    "PROJECT_ON_HOLD",
    "PROJECT_CLOSED",
    "CONTRACT_UNKNOWN",
    "ACCOUNT_UNKNOWN",
    "CONTRACT_SUSPENDED",
    "CONTRACT_INACTIVE",
    "AMENDMENT_PENDING",
    "OUTSIDE_CONTRACT_TERM",
    "MILESTONE_CONTRACT",
    "CUSTOMER_NOT_IN_ERP",
    "CURRENCY_MISMATCH",
    "UNMAPPED_LABOR_CATEGORY",
    "UNMAPPED_TAX_JURISDICTION",
    "NO_RATE",
    "AMBIGUOUS_RATE",
    "INVALID_AMOUNT",
    "COVERED_BY_RETAINER",
    "BILLING_CAP_EXCEEDED",
}


@pytest.mark.parametrize("cluster", sorted(CLUSTERS))
def test_story_fires_every_rule_and_audit_is_clean(
    make_flow: Callable[..., Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
    cluster: str,
) -> None:
    story = Story(sources, prefix)
    flow = make_flow(*CLUSTERS[cluster](), env=CLUSTER_ENV.get(cluster))
    flow.start()
    erp = erp_of(flow)
    erp.wait_tables(flow)
    seen: set[str] = set()
    timings = []
    for name, step in story.steps:
        t0 = time.monotonic()
        step()
        rows = erp.wait_lines(story.expect, flow=flow, what=f"after step {name!r}")
        erp.wait_schedule(story.schedule, flow=flow)
        seen |= {r["reason"] for r in rows.values() if r["reason"]}
        timings.append(f"{name} {time.monotonic() - t0:.1f}s")
        problems = ledger_problems(erp, story)
        assert not problems, "\n".join(problems)
    print("step timings:", ", ".join(timings))  # shown with -s / on failure

    assert seen >= REASONS, f"reasons never seen: {sorted(REASONS - seen)}"
    # the ERP tables are in the test's own schema, not in public
    with erp.engine.connect() as conn:
        where = conn.execute(
            text(
                "SELECT table_schema FROM information_schema.tables "
                "WHERE table_name = 'billing_line_state' AND table_schema = current_schema()"
            )
        ).scalar_one()
    assert where == flow.schema

    # the late line re-allocated the cap: adjustments, not a second charge
    ledger = erp.ledger([str(story.ts(30)), str(story.ts(31)), str(story.ts(40))])
    assert [e["entry_type"] for e in ledger[story.tkey(31)]] == ["charge", "reversal"]
    assert [e["entry_type"] for e in ledger[story.tkey(30)]] == ["charge", "adjustment"]
    # the moved line: reversal under the old contract, charge under the new one
    moved = ledger[story.tkey(40)]
    assert [(e["entry_type"], e["contract_id"], e["amount"]) for e in moved][-2:] == [
        ("reversal", story.id("CON", "TM"), Decimal("-400.00")),
        ("charge", story.id("CON", "TM2"), Decimal("480.00")),
    ]

    flow.audit_clean()
