"""Stale changes change nothing (SPEC 4): a change not newer than what the flow holds for its
row — a re-delivery after a Connect restart, a dead letter replayed with ``billsync dlq
replay`` — is ignored, whatever the order it arrives in.

The random change histories of ``test_properties`` get their source positions once, in
stream order; then random earlier changes are delivered again with their ORIGINAL positions
at random later points (with a close of a period in between, so final items see stale
changes too). After every step the engine's open lines equal the batch target of the newest
version of every row, given the record of final items; a stale delivery emits nothing.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billsync.change import Change
from billsync.model import ROW_TYPES, AccountingPeriod, Row
from dataflows.billing.batch import World, compute_targets
from dataflows.billing.engine import BillingEngine
from dataflows.billing.periods import becomes_final
from dataflows.billing.target import LineKey, LineTarget

from .changes import upsert
from .test_properties import MAPPINGS, change_of, histories


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), close_at=st.floats(0, 1))
def test_stale_redeliveries_change_nothing(seed: int, close_at: float) -> None:
    rnd = random.Random(seed ^ 0x57A1E)
    changes: list[Change] = [change_of(e) for e in histories(seed)]  # positions in order
    close = upsert(AccountingPeriod("2024-03", "closed"))
    changes.insert(int(close_at * len(changes)), close)
    stream: list[tuple[Change, bool]] = [(c, False) for c in changes]
    for _ in range(len(changes) // 2):  # stale copies after their original
        i = rnd.randrange(len(changes))
        j = rnd.randint(i + 1, len(stream))
        stream.insert(j, (changes[i], True))
    # the copies must land after the original: re-sort each copy after its first delivery
    seen: set[int] = set()
    ordered: list[tuple[Change, bool]] = []
    pending: list[Change] = []
    for c, stale in stream:
        if stale and id(c) not in seen:
            pending.append(c)
            continue
        ordered.append((c, stale))
        seen.add(id(c))
        for p in [p for p in pending if id(p) in seen]:
            ordered.append((p, True))
            pending.remove(p)

    engine = BillingEngine(MAPPINGS)
    tables: dict[str, dict[str, Row]] = {t: {} for t in ROW_TYPES}
    erp: dict[LineKey, LineTarget] = {}
    final: set[LineKey] = set()
    for change, stale in ordered:
        delta = engine.apply(change)
        if stale:
            assert not delta, f"a stale change emitted {delta}"
            continue
        if delta.period is not None:
            final |= {k for k, t in erp.items() if becomes_final(t, "2024-03")}
        for u in delta.lines:
            final.discard(u.key)
            if u.new is None:
                erp.pop(u.key, None)
            else:
                erp[u.key] = u.new
        if change.after is None:
            tables[change.table].pop(change.key, None)
        else:
            tables[change.table][change.key] = change.after
        lines, _ = compute_targets(World(tables), MAPPINGS, {k: erp[k] for k in final})
        assert engine.lines == lines


def test_positions_compare_within_their_source() -> None:
    from billsync.change import SourcePosition as P

    assert P("psa", lsn=10, tx_id=1).order() == 10
    assert P("crm", file="mariadb-bin.000010", pos=4, row=1).order() == (10, 4, 1)
    later_file = P("crm", file="mariadb-bin.000010", pos=1).order()
    earlier_file = P("crm", file="mariadb-bin.000009", pos=99_999).order()
    assert isinstance(later_file, tuple) and isinstance(earlier_file, tuple)
    assert earlier_file < later_file  # a rotated binlog is newer whatever the offset
    assert P("crm", file="weird", pos=4).order() is None  # not comparable: never stale
    assert P("x").order() is None
