"""The writer's ledger totals on PostgreSQL: summed in the query, equal to summing the rows.

Why it exists: ``ErpWriter._posted`` reads, for every item a batch touches, what its ledger
holds and its newest entry. Reading every entry made a batch's cost grow with how often its
items had been corrected: ``bench e2e --source crm`` (2026-12-01) changed one rate 40 times
over a contract of 2,048 open lines, and the writer spent most of its time summing ledger
rows in Python. On PostgreSQL the sums are now taken in the query (``NUMERIC``, exact): one
row per item. The unit tier runs on SQLite, which keeps the row-by-row path (its ``sum`` of
the amounts, stored as text, would be a float), so this compares the two on the stack's
PostgreSQL over items with 1 to 60 entries of varied amounts — sums, counts and the newest
entry's every column.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert

from billsync.settings import Settings
from sinks.erp import migrate
from sinks.erp import tables as t
from sinks.erp.writer import ErpWriter
from tests.integration.erp_schema import erp_schema

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _entries(rnd: random.Random, source_type: str, source_id: str, n: int) -> list[dict[str, Any]]:
    return [
        {"transaction_id": f"{source_type}-{source_id}-{seq}", "source_type": source_type,
         "source_id": source_id, "seq": seq, "contract_id": f"C{seq % 3}", "project_id": "P1",
         "erp_customer_id": "CUST-1", "legal_entity": "UK-LTD", "erp_item_code": f"SVC-{seq}",
         "revenue_account": "4010", "cost_center": None, "work_date": date(2026, 11, 2),
         "period": "2026-11", "hours": Decimal("1.00"),
         "rate": Decimal(rnd.randrange(1, 50000)) / 100,
         "amount": Decimal(rnd.randrange(-99999, 99999)) / 100,
         "tax_amount": Decimal(rnd.randrange(-9999, 9999)) / 100, "currency": "GBP",
         "entry_type": "charge" if seq % 2 == 0 else "reversal",
         "source_position": f"psa:lsn={seq}", "created_at": NOW,
         "posting_period": "2026-12" if seq % 5 == 0 else None}
        for seq in range(n)
    ]  # fmt: skip


def test_totals_in_the_query_equal_the_rows_summed(
    stack: Settings, unique_name: Callable[[str], str]
) -> None:
    rnd = random.Random(20261201)
    items = [("timesheet", str(i), rnd.randrange(1, 61)) for i in range(1, 41)]
    items += [("milestone", f"M{i}", rnd.randrange(1, 8)) for i in range(1, 6)]
    rows = [e for st, sid, n in items for e in _entries(rnd, st, sid, n)]
    keys = [(st, sid) for st, sid, _n in items] + [("timesheet", "no-ledger")]
    with erp_schema(stack, unique_name("totals")) as (_url, engine):
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(insert(t.erp_billing_transactions), rows)
        writer = ErpWriter(engine)
        with engine.connect() as conn:
            assert conn.dialect.name == "postgresql"
            summed, newest = writer._posted(conn, keys)  # the query's sums
            by_rows, newest_rows = writer._posted_rows(conn, keys)
    assert summed == by_rows
    assert newest == newest_rows
    assert ("timesheet", "no-ledger") not in summed
    many = max(items, key=lambda i: i[2])
    assert summed[many[0], many[1]].entries == many[2] > 30
    assert newest[many[0], many[1]]["seq"] == many[2] - 1
    assert all(isinstance(p.amount, Decimal) for p in summed.values())
