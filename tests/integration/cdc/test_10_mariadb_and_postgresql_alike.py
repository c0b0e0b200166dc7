"""10 · MariaDB and PostgreSQL alike.

Why it matters for billing: the billing core is one code path for PSA (PostgreSQL, pgoutput)
and CRM (MariaDB, binlog). Scenarios 01 to 09 run on both; this one runs the same change script
on both at once and compares what the edge hands out, so a difference between the two
connectors (a missing before image, a tombstone on one side only, seconds vs microseconds,
a naive timestamp, a float) is caught as a difference, not as a later billing bug.

Asserts: for insert → update → delete both sources yield the same sequence of kinds
(CREATE, UPDATE, DELETE, tombstone) with the same before/after presence, equal decimals as
``Decimal`` of scale 2, timezone-aware source timestamps, and each its own position kind
(LSN + txId vs binlog file/pos), ordered within the source.
"""

from __future__ import annotations

from decimal import Decimal

from billsync.change import Change, Op, Tombstone
from tests.integration.cdc.conftest import MakeThrowaway
from tests.integration.cdc.support import (
    CRM,
    PSA,
    Event,
    Throwaway,
    has_ops,
    of_key,
    tombstone_after,
)


def _script(t: Throwaway) -> str:
    key = t.key()
    t.insert(key, text_value="parity", amount="1000.00")
    t.update(key, **{t.source.decimal_col: Decimal("999.99")})
    t.delete(key)
    return key


def _shape(events: list[Event], key: str) -> list[tuple[str, bool, bool]]:
    changes = of_key(events, key)
    shape = [(c.op.value, c.before is not None, c.after is not None) for c in changes]
    if changes and tombstone_after(events, changes[-1]) is not None:
        shape.append(("tombstone", False, False))
    return shape


def test_mariadb_and_postgresql_alike(make_throwaway: MakeThrowaway) -> None:
    psa, crm = make_throwaway(PSA), make_throwaway(CRM)
    psa.register()
    crm.register()
    keys = {psa.name: _script(psa), crm.name: _script(crm)}

    shapes = {}
    for t in (psa, crm):
        key = keys[t.name]

        def done(events: list[Event], key: str = key) -> bool:
            changes = of_key(events, key)
            return has_ops(key, Op.CREATE, Op.UPDATE, Op.DELETE)(events) and isinstance(
                tombstone_after(events, changes[2]), Tombstone
            )

        events = t.consume_until(done)
        shapes[t.source.id] = _shape(events, key)
        created, updated, deleted = of_key(events, key)
        amounts = [
            getattr(row, t.source.decimal_col)
            for row in (created.after, updated.before, updated.after, deleted.before)
        ]
        assert amounts == [Decimal(a) for a in ("1000.00", "1000.00", "999.99", "999.99")]
        assert all(type(a) is Decimal and a.as_tuple().exponent == -2 for a in amounts)
        changes: list[Change] = [created, updated, deleted]
        for change in changes:
            assert change.source_ts is not None and change.source_ts.tzinfo is not None
            assert change.position.source == t.name
            if t.source is PSA:
                assert change.position.lsn is not None and change.position.tx_id is not None
                assert change.position.file is None
            else:
                assert change.position.file and change.position.pos is not None
                assert change.position.lsn is None
        assert created.position < updated.position < deleted.position

    expected = [
        ("c", False, True),
        ("u", True, True),
        ("d", True, False),
        ("tombstone", False, False),
    ]
    assert shapes["psa"] == shapes["crm"] == expected
