"""05 · A nullable column added while running (PostgreSQL and MariaDB).

Why it matters for billing: the PSA and CRM teams own their schemas and add columns without
asking us. Debezium then writes a new schema version (one more field) for the same topic.
The edge must keep decoding — old and new schema versions side by side — and the typed row
must ignore a column outside the contract instead of failing every record into the DLQ and
stopping invoicing.

Asserts: a column ``ADD``-ed while the connector streams yields a new writer schema id; rows
written before and after decode to the same typed row class with the contract values; the
extra column appears nowhere in the typed row. The column is dropped again at the end.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal

from billsync.change import Op
from tests.integration.cdc.support import Throwaway, all_of, has_ops, of_key, values


def test_nullable_column_added_while_running(throwaway: Throwaway) -> None:
    t = throwaway
    src = t.source
    extra = f"x_{t.name.rsplit('_', 1)[-1]}"  # unique per run: never collides with a rerun
    t.register()
    early, late = t.key("-early"), t.key("-late")
    t.insert(early, text_value="before the column", amount="1.10")
    t.consume_until(has_ops(early, Op.CREATE))  # the old schema version is in use
    t.execute(f"ALTER TABLE {src.table} ADD COLUMN {extra} {src.extra_col_type}")
    try:
        t.update(early, **{extra: "ignored"})
        t.insert(late, text_value="after the column", amount="2.20")
        events = t.consume_until(
            all_of(has_ops(early, Op.CREATE, Op.UPDATE), has_ops(late, Op.CREATE))
        )
    finally:
        t.execute(f"ALTER TABLE {src.table} DROP COLUMN {extra}")

    created_early, updated_early = of_key(events, early)
    (created_late,) = of_key(events, late)
    assert t.schema_id(created_early) != t.schema_id(created_late)
    assert t.schema_id(updated_early) == t.schema_id(created_late)
    row_type = type(created_early.after)
    for change in (updated_early, created_late):
        assert type(change.after) is row_type
        assert change.after is not None
        assert extra not in {f.name for f in dataclasses.fields(change.after)}
    assert created_late.after is not None
    assert getattr(created_late.after, src.decimal_col) == Decimal("2.20")
    assert getattr(created_late.after, src.text_col) == "after the column"
    # only the extra column changed: the contract values are the same (updated_at aside)
    assert updated_early.after is not None and created_early.after is not None
    assert values(updated_early.after, ignore=("updated_at",)) == values(
        created_early.after, ignore=("updated_at",)
    )
