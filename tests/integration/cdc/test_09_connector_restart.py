"""09 · Connector restart mid-stream (PostgreSQL and MariaDB).

Why it matters for billing: connectors restart — a deploy, a rebalance, an operator's
``billsync connectors restart``. Debezium resumes from its last committed offset, so events
after that offset may be delivered twice but none may be lost: a lost insert is unbilled
work. The billing core deduplicates by source position; this scenario proves the "at least
once" half of that contract on the real stack.

Asserts: while one writer inserts rows one transaction at a time, the throwaway connector is
restarted through Connect REST (``/restart?includeTasks=true``); every row arrives as a
CREATE at least once; any duplicate is an identical change (same position, same row).
"""

from __future__ import annotations

import threading
import time

from billsync.change import Change, Op
from tests.integration.cdc.support import Throwaway, all_of, has_ops, of_key

ROWS = 60
PAUSE_S = 0.05


def test_connector_restart_mid_stream(throwaway: Throwaway) -> None:
    t = throwaway
    t.register()
    keys = [t.key() for _ in range(ROWS)]
    half_written = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for i, key in enumerate(keys):
                t.insert(key, amount=f"{i}.01")
                if i == ROWS // 3:
                    half_written.set()
                time.sleep(PAUSE_S)
        except BaseException as exc:  # surfaced in the test thread below
            failures.append(exc)
            half_written.set()

    writer = threading.Thread(target=write, name="cdc09-writer")
    writer.start()
    assert half_written.wait(30)
    t.restart()  # while the writer keeps inserting
    writer.join(60)
    assert not writer.is_alive() and not failures, failures

    events = t.consume_until(all_of(*(has_ops(k, Op.CREATE) for k in keys)))
    for key in keys:
        creates = [c for c in of_key(events, key) if c.op is Op.CREATE]
        assert creates, key
        first = creates[0]
        for again in creates[1:]:  # a redelivery is the same change
            assert (again.position, again.after) == (first.position, first.after)
    positions = [e.position for e in events if isinstance(e, Change) and e.key in set(keys)]
    assert len(set(positions)) == ROWS
