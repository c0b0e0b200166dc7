"""12 · One statement, many rows: COPY (PostgreSQL) and a multi-row INSERT (MariaDB).

Why it matters for billing: PostgreSQL writes the rows of a COPY (bulk imports, ``billsync
db seed``) as ONE WAL record (heap multi-insert), so Debezium gives them all the same LSN —
the same commit order; a multi-row INSERT ... VALUES is one record per row. The ordering
stage (``dataflows/ordering.py``) tells a re-delivered event from a new one by its commit
order; a first version took every row after the first for a copy, and the END of that
transaction then waited for events it had already let go: the flow held every later change
of the source (seen on the stack after ``billsync db seed`` into captured tables). MariaDB
writes one rows event with a row number per row.

Asserts, for one 3-row COPY on the PSA and one 3-row INSERT on the CRM: the 3 changes form
one transaction (one ``TxRef.id``, ``total_order`` 1..3) with one END counting 3;
PostgreSQL: one LSN for all three; and the ordering stage, fed the topics as consumed,
releases exactly one unit holding the 3 rows and keeps nothing waiting.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import text

from billsync.change import Change, Op, TxMarker, transaction_topic
from dataflows.ordering import TxOrderer, Unit
from tests.integration.cdc.conftest import MakeThrowaway
from tests.integration.cdc.support import CRM, PSA, Event, Throwaway

ROWS = 3


def _copy_rows(t: Throwaway) -> list[str]:
    """PostgreSQL: ``ROWS`` rows by one ``COPY … FROM STDIN`` (as bulk imports and
    ``billsync db seed`` write); their keys."""
    keys = [t.key(f"-m{n}") for n in range(ROWS)]
    raw = t.engine.raw_connection()
    try:
        cursor = raw.cursor()
        sql = (
            "COPY milestones (milestone_id, project_id, name, amount, due_date, status) FROM STDIN"
        )
        with cursor.copy(sql) as copy:  # psycopg 3: a binary-safe row writer
            for n, k in enumerate(keys):
                copy.write_row((k, "PRJ-CDC", f"multi {n}", Decimal(n + 1), date(2025, 4, 30),
                                "planned"))  # fmt: skip
        raw.commit()
    finally:
        raw.close()
    return keys


def _write_rows(t: Throwaway) -> list[str]:
    """``ROWS`` rows in one statement — a COPY on PostgreSQL, a multi-row INSERT on MariaDB;
    their keys."""
    if t.source is PSA:
        return _copy_rows(t)
    head, _, row = t.source.insert_sql.partition("VALUES ")
    keys = [t.key(f"-m{n}") for n in range(ROWS)]
    tuples = ", ".join(
        row.replace(":k", f":k{n}").replace(":t", f":t{n}").replace(":d", f":d{n}")
        for n in range(ROWS)
    )
    params: dict[str, object] = {}
    for n, k in enumerate(keys):
        params |= {f"k{n}": k, f"t{n}": f"multi {n}", f"d{n}": Decimal("1.00") * (n + 1)}
    with t.engine.begin() as conn:
        conn.execute(text(f"{head}VALUES {tuples}"), params)
    return keys


def _check_source(t: Throwaway) -> None:
    t.register()
    keys = _write_rows(t)
    tx_topic = transaction_topic(t.name)

    def mine(events: list[Event]) -> list[Change]:
        return [e for e in events if isinstance(e, Change) and e.key in keys and e.op is Op.CREATE]

    def done(events: list[Event]) -> bool:
        changes = mine(events)
        if len(changes) < ROWS or changes[0].tx is None:
            return False
        return any(isinstance(e, TxMarker) and e.status == "END" and e.id == changes[0].tx.id
                   for e in events)  # fmt: skip

    events = t.consume_until(done, topics=[t.topic, tx_topic])
    changes = mine(events)
    assert sorted(c.key for c in changes) == sorted(keys)
    (tx_id,) = {c.tx.id for c in changes if c.tx is not None}
    assert sorted(c.tx.total_order for c in changes if c.tx) == [1, 2, 3]
    (end,) = [e for e in events if isinstance(e, TxMarker) and e.status == "END" and e.id == tx_id]
    assert end.event_count == ROWS
    if t.source is PSA:
        assert len({c.position.lsn for c in changes}) == 1  # one WAL record for the statement

    collection = f"{t.source.namespace}.{t.source.table}"
    orderer = TxOrderer(t.name, frozenset({collection}))
    units: list[Unit] = []
    for e in events:
        if isinstance(e, Change | TxMarker):
            units += orderer.feed(e)
    (unit,) = [u for u in units if u.tx_id == tx_id]
    assert sorted(c.key for c in unit.changes) == sorted(keys)
    assert orderer.waiting() == 0


def test_multi_row_insert_is_one_whole_transaction(make_throwaway: MakeThrowaway) -> None:
    _check_source(make_throwaway(PSA))
    _check_source(make_throwaway(CRM))
