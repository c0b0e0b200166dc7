"""02 · Update (PostgreSQL and MariaDB).

Why it matters for billing: corrections are updates — a rate changed, a milestone accepted, a
timesheet approved. The billing core computes the delta between the before and the after
image, so the before image must be the full previous row (PSA tables have REPLICA IDENTITY
FULL, the CRM binlog is ROW/FULL), and two rows changed by one statement must stay two
distinct changes with distinct source positions (deduplication keys on the position).

Asserts: UPDATE carries before == the previous after; after has the new values; positions
increase; a two-row UPDATE statement yields two UPDATE changes with different positions in
the same source transaction.
"""

from __future__ import annotations

from decimal import Decimal

from billsync.change import Op
from tests.integration.cdc.support import Throwaway, all_of, has_ops, of_key


def test_update(throwaway: Throwaway) -> None:
    t = throwaway
    src = t.source
    t.register()
    a, b = t.key(), t.key()
    t.insert(a, text_value="first", amount="100.00")
    t.insert(b, text_value="second", amount="200.00")
    t.update(a, **{src.decimal_col: Decimal("150.05"), src.nullable_col: src.nullable_value})
    t.execute(
        f"UPDATE {src.table} SET {src.text_col} = 'bulk' "  # names from support
        f"WHERE {src.key_col} IN (:a, :b)",
        {"a": a, "b": b},
    )

    events = t.consume_until(
        all_of(
            has_ops(a, Op.CREATE, Op.UPDATE, Op.UPDATE),
            has_ops(b, Op.CREATE, Op.UPDATE),
        )
    )
    created, single, bulk_a = of_key(events, a)
    assert single.before == created.after
    assert single.after is not None
    assert getattr(single.after, src.decimal_col) == Decimal("150.05")
    assert getattr(single.after, src.nullable_col) == src.nullable_value
    assert getattr(single.after, src.text_col) == "first"
    assert created.position < single.position < bulk_a.position

    bulk_b = of_key(events, b)[1]
    assert bulk_a.before == single.after
    for change in (bulk_a, bulk_b):
        assert change.after is not None and getattr(change.after, src.text_col) == "bulk"
    # one statement, one source transaction, two distinct positions
    assert bulk_a.position != bulk_b.position
    if src.id == "psa":
        assert bulk_a.position.tx_id == bulk_b.position.tx_id
    else:
        assert bulk_a.position.file == bulk_b.position.file
        assert {bulk_a.position.row, bulk_b.position.row} == {0, 1}
