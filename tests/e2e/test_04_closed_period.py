"""e2e 04 — a closed month on the real stack (SPEC 2b, issue 9 "Proof").

Why it exists: the unit and property tests prove closes in the core and through the dataflow
with testing sources; only this proves the path finance uses: ``billsync periods close``
writes the ERP's ``accounting_periods``, the ``erp`` Debezium connector captures it into
this flow's own topic (``erp.<schema>.accounting_periods``: every e2e flow has its ERP
schema, so a close here touches no other test), and the flow applies it at that point of
the stream. Then, as finance would see it:

1. January is closed: its billed line becomes final (``final``, ``final_period``);
2. the project goes on hold: only February's open line is held, January's stays billed
   and its ledger untouched (no reversal of invoiced revenue);
3. the hold is released, then January's line is corrected (hours 8 -> 10): the line is open
   again, the difference is posted as an adjustment into February (``posting_period``, the
   first open period), and ``billing.exceptions`` gets a ``corrected`` event with reason
   ``CHANGED_AFTER_CLOSE``;
4. ``billsync recon audit`` is clean (final items against their frozen values, open items
   against the batch target computed with them);
5. February is closed (both lines final) and reopened with a reason: ``periods reopen``
   asks the psa connector to re-snapshot the lines' rows, the flow re-evaluates them, and a
   new hold holds both; the audit is clean again.

The months are in 2019, before any other test's or the seed's data, so the close in this
flow's ERP is the first period with items (periods close in order). Run as one process and
as the billing step in 2 shards on 2 processes of 2 workers (``BILLSYNC_SHARDS``: each close
and reopen a barrier at which the shards exchange the items it made final).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import date
from decimal import Decimal

import pytest

from tests.e2e.harness import CLUSTER_ENV, CLUSTERS, Erp, Flow, Sources, small_firm
from tests.e2e.test_03_outputs import TopicReader, end_offsets, until

D = Decimal
JAN, FEB = "2019-01", "2019-02"


@pytest.mark.parametrize("cluster", ["1x1", "2x2-shards"])
def test_a_closed_month_is_final_and_its_correction_lands_in_the_next(
    make_flow: Callable[..., Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
    cluster: str,
) -> None:
    base = 10**12 + int(time.time() * 1000) % 10**7 * 10_000
    jan, feb = ("timesheet", str(base + 1)), ("timesheet", str(base + 2))
    flow = make_flow(*CLUSTERS[cluster](), env=CLUSTER_ENV.get(cluster))
    flow.start()
    db = erp_of(flow)
    db.wait_tables(flow)
    small_firm(sources, prefix, start=date(2018, 1, 1), what="e2e close",
               timesheets=[(base + 1, date(2019, 1, 14), "approved"),
                           (base + 2, date(2019, 2, 4), "approved")])  # fmt: skip
    billed = {"state": "billed", "billed_amount": D("800.00"), "final": False}
    db.wait_lines({jan: billed, feb: billed}, flow=flow, what="both months billed")

    closed = flow.cli("periods", "close", JAN, "--by", "e2e", "--json")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    db.wait_lines({jan: {**billed, "final": True, "final_period": JAN}}, flow=flow,
                  what="January final after the close")  # fmt: skip
    listed = json.loads(flow.cli("periods", "list", "--json").stdout)
    assert any(p["period"] == JAN and p["status"] == "closed" for p in listed)

    sources.update("projects", f"{prefix}-PRJ", status="on_hold")
    db.wait_lines({feb: {"state": "held", "reason": "PROJECT_ON_HOLD"}}, flow=flow,
                  what="February held")  # fmt: skip
    assert db.lines([jan])[jan]["state"] == "billed" and db.lines([jan])[jan]["final"]
    assert [e["entry_type"] for e in db.ledger([jan[1]])[jan]] == ["charge"]

    sources.update("projects", f"{prefix}-PRJ", status="active")
    db.wait_lines({feb: billed}, flow=flow, what="February released")
    topics = ("billing.exceptions", "billing.transactions")
    reader = TopicReader(flow.settings, end_offsets(flow.settings, topics))
    sources.update("timesheets", base + 1, hours=D("10.00"))
    db.wait_lines({jan: {"state": "billed", "billed_amount": D("1000.00"), "final": False,
                         "final_period": None}}, flow=flow, what="January corrected")  # fmt: skip
    ledger = db.ledger([jan[1]])[jan]
    assert [(e["entry_type"], e["amount"], e["period"], e["posting_period"]) for e in ledger] == [
        ("charge", D("800.00"), JAN, JAN),
        ("adjustment", D("200.00"), JAN, FEB),
    ]

    def published() -> str | None:
        events = [v for k, v in reader.records["billing.exceptions"] if k == f"timesheet|{jan[1]}"]
        if not any(e["event"] == "corrected" and e["reason"] == "CHANGED_AFTER_CLOSE"
                   for e in events):  # fmt: skip
            return "no corrected CHANGED_AFTER_CLOSE event on billing.exceptions"
        entries = [
            v for k, v in reader.records["billing.transactions"] if k == f"timesheet|{jan[1]}"
        ]
        if not any(e["posting_period"] == FEB for e in entries):
            return "no correction posted into February on billing.transactions"
        return None

    try:
        until(published, reader, flow, timeout=120)
    finally:
        reader.close()
    flow.audit_clean()

    # 5. February closes (January's corrected line is final again, February's too) and is
    # reopened: the flow re-reads their rows (a Debezium incremental snapshot asked for by
    # `periods reopen`) and holds both when the project goes on hold again
    closed = flow.cli("periods", "close", FEB, "--by", "e2e", "--json")
    assert closed.returncode == 0, closed.stdout + closed.stderr
    final_feb = {"final": True, "final_period": FEB}
    db.wait_lines({jan: final_feb, feb: final_feb}, flow=flow, what="February closed")
    reopened = flow.cli("periods", "reopen", FEB, "--reason", "e2e: late correction", "--json")
    assert reopened.returncode == 0, reopened.stdout + reopened.stderr
    assert json.loads(reopened.stdout)["resnapshot"] == "sent", reopened.stdout
    db.wait_lines({jan: {"final": False}, feb: {"final": False}}, flow=flow, what="reopened")
    # the rows may arrive before or after the hold: either way the lines end held
    sources.update("projects", f"{prefix}-PRJ", status="on_hold")
    held = {"state": "held", "reason": "PROJECT_ON_HOLD", "final": False}
    db.wait_lines({jan: held, feb: held}, flow=flow, what="both held after the reopen")
    flow.audit_clean()
