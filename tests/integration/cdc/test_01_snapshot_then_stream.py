"""01 · Snapshot then stream (PostgreSQL and MariaDB).

Why it matters for billing: when a connector is first registered (or re-registered after an
outage) the rows that already exist arrive as snapshot reads (``op = r``), then the log takes
over. Billing counts a read as an insert (SPEC 1). If a row were missed between the snapshot
and the stream, an approved timesheet or an accepted milestone would never be invoiced; if a
snapshot read came after the stream's update of the same row, an old amount would win.

Asserts: rows written before registration arrive as typed READ changes without a before
image; rows and updates written after arrive as CREATE / UPDATE; every snapshot read of our
rows precedes the first streamed change in the topic.
"""

from __future__ import annotations

from decimal import Decimal

from billsync.change import Change, Op
from tests.integration.cdc.support import Throwaway, all_of, has_ops, of_key


def test_snapshot_then_stream(throwaway: Throwaway) -> None:
    t = throwaway
    src = t.source
    before_a, before_b = t.key("-snap"), t.key("-snap")
    t.insert(before_a, amount="11.10")
    t.insert(before_b, amount="22.20")
    t.register()
    # the connector's snapshot runs after register() returns: a row written before the
    # snapshot's consistent point is read, not streamed. Once both reads arrived, that point
    # has passed and what follows is streamed (a fresh CI machine lost this race once:
    # insert and update both came as snapshot reads)
    t.consume_until(all_of(has_ops(before_a, Op.READ), has_ops(before_b, Op.READ)))
    streamed = t.key("-stream")
    t.insert(streamed, amount="33.30")
    t.update(before_a, **{src.decimal_col: Decimal("44.40")})

    events = t.consume_until(
        all_of(
            has_ops(before_a, Op.READ, Op.UPDATE),
            has_ops(before_b, Op.READ),
            has_ops(streamed, Op.CREATE),
        )
    )

    reads = [of_key(events, k)[0] for k in (before_a, before_b)]
    for read, amount in zip(reads, ("11.10", "22.20"), strict=True):
        assert read.op is Op.READ and read.before is None and read.after is not None
        assert getattr(read.after, src.decimal_col) == Decimal(amount)
    created = of_key(events, streamed)[0]
    assert created.op is Op.CREATE and created.before is None
    updated = of_key(events, before_a)[1]
    assert updated.op is Op.UPDATE
    assert updated.before == reads[0].after
    assert updated.after is not None
    assert getattr(updated.after, src.decimal_col) == Decimal("44.40")

    ours = {before_a, before_b, streamed}
    offsets = [(e.op, e.offset) for e in events if isinstance(e, Change) and e.key in ours]
    last_read = max(o for op, o in offsets if op is Op.READ and o is not None)
    first_stream = min(o for op, o in offsets if op is not Op.READ and o is not None)
    assert last_read < first_stream
