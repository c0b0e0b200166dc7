"""COPY appends on PostgreSQL: the same rows an INSERT writes, and the same refusals.

Why it exists: ``sinks/erp/bulk.py`` appends the ERP writer's rows with ``COPY ... FROM
STDIN`` on PostgreSQL (a quarter off a 500-emission batch, BENCHMARKS.md) and with an
``executemany`` INSERT elsewhere. The unit tier runs on SQLite, so only the INSERT path;
this writes the same rows both ways into the stack's PostgreSQL and compares them column by
column — money, aware times, NULLs, bytes, dates, booleans — and checks what must still be
refused: a float amount, a naive time, a duplicate ledger key (the transaction fails whole),
and that the outbox ids follow the rows' order (the relay publishes in id order).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, Table, delete, insert, select
from sqlalchemy.exc import IntegrityError

from billsync.settings import Settings
from sinks.erp import bulk, migrate
from sinks.erp import tables as t
from tests.integration.erp_schema import erp_schema

pytestmark = pytest.mark.integration

D = Decimal
NOW = datetime(2026, 12, 1, 9, 30, 15, 123456, tzinfo=UTC)


def _entry(n: int, **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "transaction_id": f"tx-{n}", "source_type": "timesheet", "source_id": str(n), "seq": 0,
        "contract_id": "C1", "project_id": None if n % 3 == 0 else "P1",
        "erp_customer_id": "CUST-1", "legal_entity": "UK-LTD", "erp_item_code": "SVC",
        "revenue_account": "4010", "cost_center": None, "work_date": date(2026, 11, n % 28 + 1),
        "period": "2026-11", "hours": D("7.25") if n % 2 else None, "rate": D("120.00"),
        "amount": D(f"-{n}.05") if n % 4 == 0 else D(f"{n}.10"), "tax_amount": D("0.00"),
        "currency": "GBP", "entry_type": "charge", "source_position": f"psa:lsn={n}|ü",
        "created_at": NOW, "posting_period": "2026-12" if n % 5 == 0 else None,
    }  # fmt: skip
    row.update(kw)
    return row


def _outbox(n: int) -> dict[str, Any]:
    key = None if n == 3 else f"timesheet|{n}".encode() + b"\x00\xff"
    return {"topic": "billing.transactions", "key": key, "payload": f'{{"n": {n}, "s": "é"}}',
            "created_at": NOW}  # fmt: skip


def _line(n: int) -> dict[str, Any]:
    return {
        "source_type": "timesheet", "source_id": str(n), "state": "billed", "reason": None,
        "contract_id": "C1", "project_id": "P1", "period": "2026-11",
        "billable_amount": D("10.00"), "billed_amount": D("10.00"), "held_amount": D("0.00"),
        "tax_amount": D("2.00"), "covered_hours": D("0.00"), "currency": "GBP",
        "hours": D("1.00"), "billable": n % 2 == 0, "source_position": None, "updated_at": NOW,
        "final": n == 2, "final_period": "2026-10" if n == 2 else None,
    }  # fmt: skip


def _read(engine: Engine, table: Table, order: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(table).order_by(order)).mappings()]


def test_copy_writes_what_insert_writes(stack: Settings, unique_name: Callable[[str], str]) -> None:
    ledger, outbox, lines = t.erp_billing_transactions, t.billing_outbox, t.billing_line_state
    tables: list[tuple[Table, list[dict[str, Any]], Any]] = [
        (ledger, [_entry(n) for n in range(1, 41)], ledger.c.transaction_id),
        (outbox, [_outbox(n) for n in range(1, 41)], outbox.c.id),
        (lines, [_line(n) for n in range(1, 41)], lines.c.source_id),
    ]
    with erp_schema(stack, unique_name("bulk")) as (_url, engine):
        migrate.upgrade(engine)
        with engine.connect() as conn:
            assert (conn.dialect.name, conn.dialect.driver) == ("postgresql", "psycopg")
        for table, rows, order in tables:
            with engine.begin() as conn:
                conn.execute(insert(table), rows)
            inserted = _read(engine, table, order)
            with engine.begin() as conn:
                conn.execute(delete(table))
            with engine.begin() as conn:
                bulk.append(conn, table, rows)
            copied = _read(engine, table, order)
            assert len(copied) == len(rows), table.name
            if table is outbox:  # new ids from the sequence, in the rows' order
                assert [r["id"] for r in copied] == sorted(r["id"] for r in copied)
                assert copied[0]["id"] > inserted[-1]["id"]
                for r in inserted + copied:
                    r.pop("id")
            assert copied == inserted, table.name
            assert repr(copied) == repr(inserted), table.name  # same scale, same tz


def test_copy_refuses_what_insert_refuses(
    stack: Settings, unique_name: Callable[[str], str]
) -> None:
    with erp_schema(stack, unique_name("bulkbad")) as (_url, engine):
        migrate.upgrade(engine)
        ledger = t.erp_billing_transactions
        with pytest.raises(TypeError, match="Money columns take Decimal"), engine.begin() as conn:
            bulk.append(conn, ledger, [_entry(1), _entry(2, amount=2.1)])
        with pytest.raises(ValueError, match="naive datetime"), engine.begin() as conn:
            bulk.append(conn, ledger, [_entry(1), _entry(2, created_at=datetime(2026, 12, 1))])  # noqa: DTZ001  # the refusal under test
        with pytest.raises(ValueError, match="no column"), engine.begin() as conn:
            bulk.append(conn, ledger, [{**_entry(1), "nope": 1}, {**_entry(2), "nope": 1}])
        with engine.begin() as conn:
            bulk.append(conn, ledger, [_entry(1), _entry(2)])
        # a duplicate key fails the statement and the transaction: nothing of it stays
        with (
            pytest.raises(IntegrityError, match=r"UniqueViolation|duplicate key"),
            engine.begin() as conn,
        ):
            bulk.append(conn, ledger, [_entry(3), _entry(4)])
            bulk.append(conn, ledger, [_entry(5), _entry(2)])
        ids = [r["transaction_id"] for r in _read(engine, ledger, ledger.c.transaction_id)]
        assert ids == ["tx-1", "tx-2"]
