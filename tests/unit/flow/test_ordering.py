"""The ordering stage (dataflows/ordering.py): commit order and whole transactions per source.

A source history is a list of transactions in commit order. Debezium writes each collection's
events to its own topic and the END markers to the transaction topic, each in commit order;
Kafka hands the flow those topics in any interleaving. Whatever the interleaving, the stage
must release one unit per transaction, in commit order, each holding exactly its events.
"""

from __future__ import annotations

import copy
import time
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from billsync.change import Change, Op, SourcePosition, TxMarker, TxRef
from billsync.model import Project
from dataflows.ordering import RECENT, Letter, TxOrderer, Unit

COLLECTIONS = ("public.projects", "public.timesheets", "public.employees")
TX_TOPIC = "psa.transaction"


def _row(key: str) -> Project:
    return Project(key)


Item = Change | TxMarker | Letter


def history(
    txs: list[list[int]], reads: int = 0, tombstones: bool = False, multi: bool = False
) -> dict[str, list[Item]]:
    """Topics for ``reads`` snapshot reads (on the first collection) then ``txs`` (each a list
    of collection indexes, one event each). ``tombstones``: every second event of a
    transaction is a delete, followed at once by its Kafka tombstone (inside the run).
    ``multi``: all events of a transaction share one LSN, as the rows of a PostgreSQL
    COPY do (one WAL record)."""
    out: dict[str, list[Item]] = {}
    lsn = [0]

    def add(collection: str, key: str, op: Op, tx: TxRef | None) -> None:
        topic = f"psa.{collection}"
        if not (multi and tx is not None and tx.total_order > 1):
            lsn[0] += 1
        records = out.setdefault(topic, [])
        # as Debezium's source.sequence: the commit LSN of the transaction before (n for
        # transaction n), then the event's; a snapshot read has none
        last_commit = None if tx is None else int(tx.id.split(":")[0])
        position = SourcePosition("psa", lsn=lsn[0], commit_lsn=last_commit)
        records.append(
            Change(
                "projects",
                op,
                key,
                None,
                _row(key),
                position,
                topic=topic,
                partition=0,
                offset=len(records),
                tx=tx,
            )
        )

    def offset(topic: str) -> int:
        return len(out.setdefault(topic, []))

    for r in range(reads):
        add(COLLECTIONS[0], f"R{r}", Op.READ, None)
    for n, colls in enumerate(txs):
        tx = f"{n}:{1000 + n}"
        counts: dict[str, int] = {}
        for order, c in enumerate(colls, start=1):
            delete = tombstones and order % 2 == 0
            op = Op.DELETE if delete else Op.UPDATE
            add(COLLECTIONS[c], f"K{n}-{order}", op, TxRef(tx, order))
            if delete:
                topic = f"psa.{COLLECTIONS[c]}"
                out[topic].append(Letter(None, topic, 0, offset(topic)))
            counts[COLLECTIONS[c]] = counts.get(COLLECTIONS[c], 0) + 1
        out.setdefault(TX_TOPIC, []).append(
            TxMarker("psa", "BEGIN", tx, None, (), TX_TOPIC, 0, offset(TX_TOPIC))
        )
        out[TX_TOPIC].append(
            TxMarker(
                "psa",
                "END",
                tx,
                len(colls),
                tuple(sorted(counts.items())),
                TX_TOPIC,
                0,
                offset(TX_TOPIC),
                ("", n + 1),  # its commit LSN: the next transaction's last commit
            )
        )
    return out


def interleave(topics: dict[str, list[Item]], picks: list[int]) -> list[Item]:
    """Merge the topics, keeping each topic's order; ``picks`` chooses the next topic."""
    heads = {t: 0 for t in topics}
    out: list[Item] = []
    i = 0
    while True:
        live = [t for t in sorted(topics) if heads[t] < len(topics[t])]
        if not live:
            return out
        t = live[picks[i % len(picks)] % len(live)] if picks else live[0]
        i += 1
        out.append(topics[t][heads[t]])
        heads[t] += 1


def feed(items: list[Item], transactional: bool = True) -> list[Unit]:
    orderer = TxOrderer("psa", frozenset(COLLECTIONS), transactional)
    units: list[Unit] = []
    for item in items:
        units += orderer.feed(item)
    assert orderer.waiting() == 0, "changes left waiting at the end of the input"
    return units


def assert_covers_only_go_forward(units: list[Unit]) -> None:
    """Per input partition, what is released never goes back: the writer's progress relies
    on it."""
    high: dict[str, int] = {}
    for u in units:
        for key, offset in u.covers:
            assert offset > high.get(key, -1), (key, offset, high)
            high[key] = offset


TXS = st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=4), min_size=1, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    txs=TXS,
    reads=st.integers(0, 3),
    picks=st.lists(st.integers(0, 5), max_size=60),
    tombstones=st.booleans(),
    multi=st.booleans(),
)
def test_any_interleaving_gives_whole_transactions_in_commit_order(
    txs: list[list[int]], reads: int, picks: list[int], tombstones: bool, multi: bool
) -> None:
    units = feed(interleave(history(txs, reads, tombstones, multi), picks))
    tx_units = [u for u in units if u.tx_id is not None]
    assert [u.tx_id for u in tx_units] == [f"{n}:{1000 + n}" for n in range(len(txs))]
    for n, u in enumerate(tx_units):
        assert [c.key for c in u.changes] == [f"K{n}-{o}" for o in range(1, len(txs[n]) + 1)]
    assert sorted(c.key for u in units if u.tx_id is None for c in u.changes) == sorted(
        f"R{r}" for r in range(reads)
    )
    assert_covers_only_go_forward(units)


def test_a_transaction_waits_for_its_end_and_all_its_events() -> None:
    topics = history([[0, 1]])
    hold, approve = topics[f"psa.{COLLECTIONS[0]}"][0], topics[f"psa.{COLLECTIONS[1]}"][0]
    begin, end = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    assert orderer.feed(hold) == []  # no END yet
    assert orderer.feed(begin) == []
    assert orderer.feed(end) == []  # the approval has not arrived
    (unit,) = orderer.feed(approve)
    assert unit.changes == (hold, approve)
    assert dict(unit.covers) == {
        f"psa.{COLLECTIONS[0]}:0": 0,
        f"psa.{COLLECTIONS[1]}:0": 0,
        f"{TX_TOPIC}:0": 1,
    }


def test_a_later_transaction_waits_for_an_earlier_one() -> None:
    topics = history([[0], [1]])
    first, second = topics[f"psa.{COLLECTIONS[0]}"][0], topics[f"psa.{COLLECTIONS[1]}"][0]
    _, end1, _, end2 = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    assert orderer.feed(second) == [] and orderer.feed(end1) == [] and orderer.feed(end2) == []
    units = orderer.feed(first)
    assert [u.changes for u in units] == [(first,), (second,)]


def test_missing_events_are_released_once_a_later_event_of_their_topic_arrived() -> None:
    """An event compacted away (or dead-lettered) never comes: the transaction goes as soon as
    its topic shows an event after it, instead of waiting forever."""
    topics = history([[0, 0], [0]])
    coll = f"psa.{COLLECTIONS[0]}"
    _gone, kept, later = topics[coll]
    _, end1, _, end2 = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    assert orderer.feed(end1) == [] and orderer.feed(kept) == [] and orderer.feed(end2) == []
    units = orderer.feed(later)
    assert [u.changes for u in units] == [(kept,), (later,)]


def test_a_transaction_without_end_in_front_of_a_released_end_goes_first() -> None:
    """Events of a transaction whose markers were never written (the connector had no tx
    metadata yet) sit in front of the next transaction's: released as they stand."""
    topics = history([[0], [0]])
    coll = f"psa.{COLLECTIONS[0]}"
    orphan, next_ = topics[coll]
    _, _, _, end2 = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    assert orderer.feed(orphan) == [] and orderer.feed(next_) == []
    units = orderer.feed(end2)
    assert [u.changes for u in units] == [(orphan,), (next_,)]


def test_collections_the_flow_does_not_read_are_not_waited_for() -> None:
    topics = history([[0, 2]])
    mine = topics[f"psa.{COLLECTIONS[0]}"][0]
    _, end = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS[:1]))  # employees not read
    assert orderer.feed(end) == []
    (unit,) = orderer.feed(mine)
    assert unit.changes == (mine,)


def test_without_the_transaction_topic_every_change_is_its_own_unit() -> None:
    topics = history([[0, 1]])
    items = [c for t, cs in sorted(topics.items()) if t != TX_TOPIC for c in cs]
    units = feed(items, transactional=False)
    assert [u.changes for u in units] == [(c,) for c in items]


def test_an_end_delivered_again_is_dropped_instead_of_blocking_the_next() -> None:
    topics = history([[0], [1]])
    first, second = topics[f"psa.{COLLECTIONS[0]}"][0], topics[f"psa.{COLLECTIONS[1]}"][0]
    _, end1, _, end2 = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    assert [u.changes for u in orderer.feed(first) + orderer.feed(end1)] == [(first,)]
    assert orderer.feed(end1) == []  # again (a Connect restart, a dlq replay)
    assert orderer.feed(end2) == []
    assert [u.changes for u in orderer.feed(second)] == [(second,)]


def test_a_tombstone_is_a_unit_of_its_offset_only() -> None:
    """Its offset is input the ERP records as applied; it carries no change, no letter."""
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    (unit,) = orderer.feed(Letter(None, f"psa.{COLLECTIONS[0]}", 0, 5))
    assert (unit.changes, unit.letters, unit.covers) == ((), (), ((f"psa.{COLLECTIONS[0]}:0", 5),))


def test_a_table_topic_read_far_ahead_of_the_transaction_topic_stays_linear() -> None:
    """A consumer catching up may read thousands of a table's events before their ENDs:
    releasing them must not scan the waiting queues once per record (it did, and a flow
    catching up on the live stack spun at 100 % CPU for minutes)."""
    n = 20_000
    topics = history([[0]] + [[1]] * n)  # one transaction on projects, then n on timesheets
    markers = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    began = time.perf_counter()
    units: list[Unit] = []
    # the first END, then the whole timesheets topic, then projects, then the other ENDs
    for item in (*markers[:2], *topics[f"psa.{COLLECTIONS[1]}"], *topics[f"psa.{COLLECTIONS[0]}"],
                 *markers[2:]):  # fmt: skip
        units += orderer.feed(item)
    assert len(units) == n + 1 and orderer.waiting() == 0
    assert time.perf_counter() - began < 10.0  # quadratic: 20k x 20k queue scans


def test_a_transaction_delivered_again_whole_is_released_again() -> None:
    """After a Connect restart Debezium re-sends a transaction, events and END: it goes
    through again (the engine ignores its stale changes) instead of blocking its topic."""
    topics = history([[0], [0]])
    first, second = topics[f"psa.{COLLECTIONS[0]}"]
    _, end1, _, end2 = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    assert [u.changes for u in orderer.feed(first) + orderer.feed(end1)] == [(first,)]
    assert [u.changes for u in orderer.feed(first) + orderer.feed(end1)] == [(first,)]
    assert [u.changes for u in orderer.feed(second) + orderer.feed(end2)] == [(second,)]


def _tx_index(item: Item) -> int:
    """The transaction a record of :func:`history` belongs to (-1: a snapshot read)."""
    if isinstance(item, TxMarker):
        return int(item.id.split(":")[0])
    if isinstance(item, Letter):
        return -2  # a tombstone: placed with the delete before it by the caller
    return int(item.tx.id.split(":")[0]) if item.tx is not None else -1


def delivered_again(
    txs: list[list[int]], crash: int, cut: int, tombstones: bool, multi: bool = False
) -> tuple[dict[str, list[Item]], int]:
    """The topics of ``history(txs)`` as Debezium writes them around a restart: it wrote the
    first ``crash`` records of its history, restarted from its last flushed offset (record
    ``cut`` <= ``crash``) and wrote everything from there again, then went on. Offsets are
    renumbered per topic. Returns the topics and the number of records written twice."""
    topics = history(txs, tombstones=tombstones, multi=multi)
    # the source's history in commit order: per transaction its BEGIN, events (each delete
    # followed by its tombstone), END
    by_tx: dict[int, list[tuple[str, Item]]] = {}
    for topic, items in topics.items():
        owner = -1
        for item in items:
            idx = _tx_index(item)
            owner = owner if idx == -2 else idx
            by_tx.setdefault(owner, []).append((topic, item))
    ordered: list[tuple[str, Item]] = []
    for n in sorted(by_tx):
        recs = by_tx[n]
        markers = [r for r in recs if isinstance(r[1], TxMarker)]
        events = sorted((r for r in recs if not isinstance(r[1], TxMarker)),
                        key=lambda r: (r[1].offset, r[0]))  # fmt: skip
        events.sort(key=lambda r: _lsn(r[1]))
        ordered += [*markers[:1], *events, *markers[1:]]
    crash = min(crash, len(ordered))
    cut = min(cut, crash)
    written = ordered[:crash] + ordered[cut:]
    out: dict[str, list[Item]] = {}
    for topic, item in written:
        records = out.setdefault(topic, [])
        records.append(replace(item, offset=len(records)))
    return out, crash - cut


def _lsn(item: Item) -> int:
    """An event's LSN; a tombstone sorts right after its delete."""
    return item.position.lsn if isinstance(item, Change) and item.position.lsn else 0


@settings(max_examples=300, deadline=None)
@given(
    txs=TXS,
    crash=st.integers(0, 60),
    back=st.integers(0, 60),
    picks=st.lists(st.integers(0, 5), max_size=80),
    tombstones=st.booleans(),
    multi=st.booleans(),
)
def test_records_delivered_again_never_block_nor_apply_twice(
    txs: list[list[int]], crash: int, back: int, picks: list[int], tombstones: bool, multi: bool
) -> None:
    """Debezium is at-least-once: after a Connect or broker restart it writes again what it
    wrote since its last offset flush — events and markers — and Kafka hands the copies to the
    flow in any interleaving with the originals (CI's chaos 02 once left a flow holding PSA
    changes for good: a re-sent END was dropped before its re-sent events, which then waited
    at the front of their queue for an END that had come already). Whatever the interleaving:
    nothing is left waiting, every transaction is released once, whole, in commit order, and
    a copy goes as a unit of its own, or inline in the run it sits in."""
    topics, _again = delivered_again(txs, crash, max(0, crash - back), tombstones, multi)
    units = feed(interleave(topics, picks))
    tx_units = [u for u in units if u.tx_id is not None]
    assert [u.tx_id for u in tx_units] == [f"{n}:{1000 + n}" for n in range(len(txs))]
    for n, u in enumerate(tx_units):
        own = [c.key for c in u.changes if c.key.startswith(f"K{n}-")]
        assert list(dict.fromkeys(own)) == [f"K{n}-{o}" for o in range(1, len(txs[n]) + 1)]
        # a copy between its events in a partition goes inline, after them (the engine ignores
        # it: not newer); only ever a copy of an event of this or an earlier transaction
        copies = [c.key for c in u.changes if not c.key.startswith(f"K{n}-")]
        assert all(int(k[1:].split("-")[0]) < n for k in copies), copies
    assert_covers_only_go_forward(units)


def test_an_end_sent_again_before_its_events_drops_and_the_events_go_on_their_own() -> None:
    """The chaos 02 defect: the END of a released transaction delivered again is read before
    the copies of its events; the copies must not wait for it."""
    topics = history([[0], [0]])
    coll = f"psa.{COLLECTIONS[0]}"
    first, second = topics[coll]
    _, end1, _, end2 = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    assert [u.changes for u in orderer.feed(first) + orderer.feed(end1)] == [(first,)]
    assert orderer.feed(replace(end1, offset=4)) == []  # the END again, first
    copy = replace(first, offset=2)
    (unit,) = orderer.feed(copy)  # then its event again: through at once, on its own
    assert (unit.tx_id, unit.changes, unit.covers) == (None, (copy,), ((f"{coll}:0", 2),))
    assert [u.changes for u in orderer.feed(second) + orderer.feed(end2)] == [(second,)]
    assert orderer.waiting() == 0


def test_an_end_sent_again_long_after_is_known_by_its_commit_order() -> None:
    """Past the remembered ids (RECENT), an END delivered again is still dropped: it is not
    after the latest END of its lane."""
    txs = [[0]] * (RECENT + 5)
    topics = history(txs)
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    for item in interleave(topics, []):
        orderer.feed(item)
    old_end = topics[TX_TOPIC][1]
    assert old_end.id not in orderer._released  # forgotten by id
    assert orderer.feed(replace(old_end, offset=10**6)) == []
    assert orderer.waiting() == 0 and not orderer._ends


def test_a_snapshot_from_before_the_redelivery_fields_loads() -> None:
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    state = orderer.__getstate__()
    _, slots = state
    del slots["_tail"], slots["_end_high"]
    loaded = TxOrderer.__new__(TxOrderer)
    loaded.__setstate__(state)
    assert loaded._tail == {} and loaded._end_high == {} and loaded.source == "psa"
    assert copy.deepcopy(orderer) == orderer  # the same __getstate__/__setstate__ as pickle


def test_the_rows_of_one_copy_share_an_lsn_and_are_not_copies() -> None:
    """Seen on the stack (``billsync db seed`` into a captured PSA): a COPY is one WAL
    record (heap multi-insert), and Debezium gives its 40 rows the same LSN. A first version
    took rows 2..40 for copies of row 1; the END then waited for events it had already let
    go, and the flow held every later PSA change."""
    topics = history([[0, 0, 0]], multi=True)
    rows = topics[f"psa.{COLLECTIONS[0]}"]
    assert len({r.position for r in rows}) == 1
    _, end = topics[TX_TOPIC]
    orderer = TxOrderer("psa", frozenset(COLLECTIONS))
    assert [orderer.feed(r) for r in rows] == [[], [], []]
    (unit,) = orderer.feed(end)
    assert unit.changes == tuple(rows) and orderer.waiting() == 0
