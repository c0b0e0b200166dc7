"""03 · Delete and tombstone (PostgreSQL and MariaDB).

Why it matters for billing: a deleted timesheet line or rate must reverse what was billed
from it, so a delete must be explicit and carry the deleted row (its key and last values);
the Kafka tombstone that follows lets log compaction forget the key, and must be recognised
as "nothing to bill", never mistaken for a row or a poison record.

Asserts: DELETE has ``after is None``, the full last row in ``before``, the row's key; the
next record of the partition is a Tombstone whose Kafka key is the delete's Kafka key.
"""

from __future__ import annotations

from decimal import Decimal

from billsync.change import Op
from tests.integration.cdc.support import Throwaway, has_ops, of_key, tombstone_after


def test_delete_and_tombstone(throwaway: Throwaway) -> None:
    t = throwaway
    src = t.source
    t.register()
    key = t.key()
    t.insert(key, text_value="to be deleted", amount="75.25")
    t.delete(key)

    events = t.consume_until(
        lambda ev: (
            has_ops(key, Op.CREATE, Op.DELETE)(ev)
            and tombstone_after(ev, of_key(ev, key)[1]) is not None
        )
    )
    created, deleted = of_key(events, key)
    assert deleted.is_delete and deleted.after is None
    assert deleted.before == created.after  # the whole last row, not only the key
    assert deleted.before is not None
    assert getattr(deleted.before, src.decimal_col) == Decimal("75.25")
    assert created.position < deleted.position

    tombstone = tombstone_after(events, deleted)
    assert tombstone is not None
    assert deleted.partition is not None and deleted.offset is not None
    delete_key_bytes = t.raw[(deleted.partition, deleted.offset)][0]
    assert tombstone.key is not None and tombstone.key == delete_key_bytes
    assert t.raw[(tombstone.partition, tombstone.offset)][1] is None
