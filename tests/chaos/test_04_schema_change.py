"""chaos 04 — a column added to a source table while the flow runs does not stop it.

Why it exists: SPEC 1 lets the PSA and CRM applications add nullable columns at any time and
SPEC 4 says the flow must not stop. Debezium then registers a new schema version (a new
schema id) for the topic mid-stream; the typed edge must compile a plan for it and ignore the
column it does not know, instead of dead-lettering every later change of that table.

Steps, with the flow running on the story's world:

1. ``ALTER TABLE timesheets ADD COLUMN <unique> text`` in PSA and
   ``ALTER TABLE contracts ADD COLUMN <unique> varchar(40)`` in CRM (nullable);
2. changes that fill the new columns: a new approved line, an edited line, the capped
   contract's cap raised — each billed as SPEC 2 says, and none of them in ``billing.dlq``;
3. both columns dropped again (clean-up, also while the flow runs: Debezium registers yet
   another schema version), then more changes (a new line, the cap lowered back): billed;
4. ``recon audit`` clean, no effect posted twice.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from decimal import Decimal

from sqlalchemy import text

from billsync.settings import Settings
from tests.chaos.kafka_io import DLQ, DlqReader, end_offset
from tests.e2e.harness import Erp, Flow, Sources
from tests.e2e.story import WORK, Story, at, billed, state

D = Decimal


# The start (world, flow, ERP tables) is every chaos test's, as in test_03: a few calls of
# the e2e harness, spelled out so each test reads top to bottom.
def test_column_added_and_dropped_while_running(
    stack: Settings,
    make_flow: Callable[[], Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
) -> None:
    story = Story(sources, prefix)
    story.world()
    flow = make_flow()
    flow.start()
    erp = erp_of(flow)
    erp.wait_tables(flow)
    erp.wait_lines(story.expect, flow=flow, what="the world")
    reader = DlqReader(stack, end_offset(stack, DLQ))
    column = f"chaos_{uuid.uuid4().hex[:8]}"
    psa, crm = sources.psa, sources.crm
    cap_id, tk = story.id("CON", "CAP"), story.tkey
    added = False
    try:
        with psa.begin() as conn:
            conn.execute(text(f"ALTER TABLE timesheets ADD COLUMN {column} text"))
        with crm.begin() as conn:
            conn.execute(text(f"ALTER TABLE contracts ADD COLUMN {column} varchar(40)"))
        added = True
        t0 = time.monotonic()
        new = story.ts(60)
        with psa.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO timesheets (timesheet_id, employee_id, project_id, work_date, "
                    f"hours, billable, status, approved_at, notes, {column}) VALUES (:id, :emp, "
                    ":prj, :wd, 3.00, true, 'approved', :at, 'chaos 04', :extra)"
                ),
                {
                    "id": new,
                    "emp": story.id("EMP", "CON"),
                    "prj": story.id("PRJ", "TM"),
                    "wd": WORK,
                    "at": at(1),
                    "extra": f"{prefix} new column",
                },
            )
            conn.execute(
                text(
                    f"UPDATE timesheets SET hours = 8.00, {column} = 'edited' "
                    "WHERE timesheet_id = :id"
                ),
                {"id": story.ts(20)},
            )
        with crm.begin() as conn:
            conn.execute(
                text(
                    f"UPDATE contracts SET cap_amount = 2000.00, {column} = 'raised' "
                    "WHERE contract_id = :id"
                ),
                {"id": cap_id},
            )
        story.expect.update(
            {
                tk(60): billed("300.00", "60.00"),
                tk(20): billed("800.00", "160.00"),
                tk(30): billed("600.00", "120.00"),
                tk(31): billed("600.00", "120.00"),
                tk(32): billed("300.00", "60.00"),
            }
        )
        erp.wait_lines(story.expect, flow=flow, what="changes using the new columns")
        print(f"changes with the new columns billed in {time.monotonic() - t0:.1f}s")
    finally:
        if added:  # clean-up first, so a failure above leaves the shared tables as they were
            with psa.begin() as conn:
                conn.execute(text(f"ALTER TABLE timesheets DROP COLUMN IF EXISTS {column}"))
            with crm.begin() as conn:
                conn.execute(text(f"ALTER TABLE contracts DROP COLUMN IF EXISTS {column}"))
            sources.written.setdefault("timesheets", set()).add(story.ts(60))
    try:
        # after the drop: the flow still goes on
        t0 = time.monotonic()
        sources.insert("timesheets", [story._timesheet(61, "CON", "TM", "1.00", 1)])
        sources.update("contracts", cap_id, cap_amount=D("1000.00"))
        story.expect.update(
            {
                tk(61): billed("100.00", "20.00"),
                tk(30): billed("600.00", "120.00"),
                tk(31): state("partially_held", "BILLING_CAP_EXCEEDED", billed_amount=D("400.00")),
                tk(32): state("held", "BILLING_CAP_EXCEEDED", billed_amount=D("0.00")),
            }
        )
        erp.wait_lines(story.expect, flow=flow, what="changes after the columns were dropped")
        print(f"changes after the drop billed in {time.monotonic() - t0:.1f}s")
        reader.poll(3.0)
        mine = [r for r in reader.records if prefix.encode() in (r["value"] or b"")]
        assert not mine, f"{len(mine)} of this test's changes in {DLQ}: {mine[0]['error']}"
        flow.audit_clean()
        everywhere = erp.all_ledger_violations()
        assert not everywhere, "\n".join(everywhere[:20])
    finally:
        reader.close()
