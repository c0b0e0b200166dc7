"""04 · Primary-key update (PostgreSQL and MariaDB).

Why it matters for billing: when a source renames a key (a milestone re-numbered, a rate
re-keyed), Debezium does not emit an update: it emits a DELETE of the old key, a tombstone for
the old key, and a CREATE of the new key. Billing state is keyed by the row key, so it must
reverse what it billed under the old key and bill the new key afresh — an "update" of the
old key would leave a phantom line behind.

Asserts: after ``UPDATE ... SET <pk> = new``: old key DELETE (before = the old row) then a
tombstone, then new key CREATE (before None) with the same non-key values.
"""

from __future__ import annotations

from billsync.change import Op
from tests.integration.cdc.support import (
    Throwaway,
    all_of,
    has_ops,
    of_key,
    tombstone_after,
    values,
)


def test_primary_key_update(throwaway: Throwaway) -> None:
    t = throwaway
    src = t.source
    t.register()
    old, new = t.key("-old"), t.key("-new")
    t.insert(old, text_value="rekeyed", amount="321.09")
    t.update(old, **{src.key_col: new})

    events = t.consume_until(all_of(has_ops(old, Op.CREATE, Op.DELETE), has_ops(new, Op.CREATE)))
    created_old, deleted_old = of_key(events, old)
    (created_new,) = of_key(events, new)
    assert deleted_old.after is None and deleted_old.before == created_old.after
    tombstone = tombstone_after(events, deleted_old)
    assert tombstone is not None
    assert deleted_old.offset is not None and created_new.offset is not None
    assert deleted_old.offset < tombstone.offset < created_new.offset
    assert created_new.op is Op.CREATE and created_new.before is None
    assert created_new.after is not None and created_old.after is not None
    # the same row under the new key (the PSA trigger stamps updated_at on every update)
    assert values(created_new.after, ignore=("updated_at",)) == {
        **values(created_old.after, ignore=("updated_at",)),
        src.key_col: new,
    }
    assert deleted_old.position <= created_new.position
