"""07 · NULL vs absent (PostgreSQL and MariaDB).

Why it matters for billing: a nullable contract column set to NULL is information ("not
accepted yet", "open-ended rate") that must reach the core as None and must be able to flip
to a value and back. A contract column the writer does not send at all (a connector that
excludes it, or an older source version without it) must also decode — as None — instead of
failing the record; both cases must be tellable apart where it matters: in the writer schema.

Setup: the throwaway connector excludes one NOT NULL contract column (``column.exclude.list``),
so it is absent from the Avro schema although every row has a value in the database.

Asserts: the nullable column goes None → value → None across updates (before images agree);
the excluded column is None in every typed row; the writer schema has the nullable column and
lacks the excluded one.
"""

from __future__ import annotations

from billsync.change import Op
from tests.integration.cdc.support import Throwaway, has_ops, of_key


def test_null_vs_absent(throwaway: Throwaway) -> None:
    t = throwaway
    src = t.source
    t.register(changes={"column.exclude.list": src.qualified(src.other_col)})
    key = t.key()
    t.insert(key)  # nullable column NULL
    t.update(key, **{src.nullable_col: src.nullable_value})
    t.update(key, **{src.nullable_col: None})

    events = t.consume_until(has_ops(key, Op.CREATE, Op.UPDATE, Op.UPDATE))
    created, set_value, set_null = of_key(events, key)
    assert created.after is not None and set_value.after is not None
    assert set_null.after is not None and set_null.before is not None
    assert getattr(created.after, src.nullable_col) is None
    assert getattr(set_value.after, src.nullable_col) == src.nullable_value
    assert getattr(set_null.before, src.nullable_col) == src.nullable_value
    assert getattr(set_null.after, src.nullable_col) is None

    for change in (created, set_value, set_null):
        assert getattr(change.after, src.other_col) is None  # absent: the database has a value
        fields = t.row_fields(change)
        assert src.nullable_col in fields
        assert src.other_col not in fields
        assert src.key_col in fields
