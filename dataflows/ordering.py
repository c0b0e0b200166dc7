"""Commit order and whole transactions per source (SPEC 4): the ordering stage.

Debezium writes each table of a source to its own topic (one partition, in the source's commit
order) and, with ``provide.transaction.metadata``, a BEGIN and an END record per transaction to
``<prefix>.transaction`` (in commit order too); the END counts the transaction's events per
data collection. Kafka gives the flow these topics in any interleaving. :class:`TxOrderer`
(one per source, pure) turns them back into the source's commit order, one :class:`Unit` per
transaction:

- every input topic partition is a FIFO queue; a unit is only ever taken from the heads of the
  queues, so per partition nothing overtakes anything (a snapshot read never overtakes a
  transaction committed before it was read);
- a change without transaction metadata (snapshot and incremental-snapshot reads, or a
  connector without tx metadata) is a unit of its own as soon as it is at the head;
- a transaction is released when its END has arrived, all ENDs before it are released, and,
  for each data collection the flow reads, its events have all arrived — or the queue of that
  collection already holds a later event (the missing ones will never come: compacted away,
  or dead-lettered because they could not be decoded: those went to ``billing.dlq``);
- a transaction whose END will never come (its events sit in front of a released END's
  events in a queue: the markers of a transaction the connector began before it had
  metadata) is released as it stands, in front;
- a record delivered again (Debezium is at-least-once: after a Connect or broker restart it
  re-sends what it wrote since its last offset flush, events and markers, read in any
  interleaving with the originals) never waits and never blocks. Each partition is written
  in commit order, so an event whose commit order is before the latest one its partition
  gave is a re-delivery, and so is one at it with a row key seen there (the rows of one
  multi-row WAL record share an LSN), and so is an END not after the latest END of its lane
  (``TxMarker.order``); an event of a transaction already released is one too (the last
  :data:`RECENT` ids, for positions without a commit order). A re-delivered event goes
  through in its place as a unit of its own (the engine ignores a change not newer than
  what it holds: SPEC 4, replays post nothing new); a re-delivered END is dropped.

Collections the flow does not read (other schemas' period tables, the signal tables) are not
counted. A source whose transaction topic the flow does not read has no transactions: each
change is its own unit. Units carry ``covers``, the highest offset per input partition they
released (the END's too), which the writer records with the batch (SPEC 4: replays).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any

from billsync.change import Change, TxMarker

END = "END"
RECENT = 1000  # released transaction ids remembered, to drop an END delivered again


@dataclass(frozen=True, slots=True)
class Letter:
    """A dead letter (``billing.dlq`` value) at its place in its input partition: it goes
    through the ordering stage like a change outside a transaction, so the writer records
    its offset with the unit it is part of and a replay does not dead-letter it again; and
    it is a later event of its topic (a transaction missing an event that could not be
    decoded is released once the letter arrived).

    ``record`` None: a Kafka tombstone, which carries nothing but its offset — it goes through
    for the same reasons (its offset is input the ERP records as applied; the ``op=d``
    record before it may be compacted away, leaving the tombstone as that offset's
    successor)."""

    record: dict[str, Any] | None
    topic: str | None
    partition: int | None
    offset: int | None
    tx: None = None

    @property
    def collection(self) -> str | None:
        return self.topic.split(".", 1)[1] if self.topic and "." in self.topic else None

    @classmethod
    def of(cls, record: dict[str, Any]) -> Letter:
        offset = record.get("offset")
        partition = record.get("partition")
        return cls(
            record,
            record.get("topic"),
            partition if isinstance(partition, int) else None,
            offset if isinstance(offset, int) else None,
        )


@dataclass(frozen=True, slots=True)
class Again:
    """An event delivered again, in its place in its partition's queue: released as a unit of
    its own when it reaches the front, never counted for its transaction, never a "later
    event" of a queue."""

    change: Change
    tx: None = None

    @property
    def topic(self) -> str | None:
        return self.change.topic

    @property
    def partition(self) -> int | None:
        return self.change.partition

    @property
    def offset(self) -> int | None:
        return self.change.offset


Queued = Change | Letter | Again


@dataclass(frozen=True, slots=True)
class Unit:
    """What the billing step applies at once: one source transaction (its changes in the
    transaction's own order), one change outside a transaction, or one dead letter."""

    source: str
    changes: tuple[Change, ...]
    tx_id: str | None
    covers: tuple[tuple[str, int], ...]  # ("topic:partition", highest offset released)
    letters: tuple[dict[str, Any], ...] = ()


Ordered = Change | TxMarker | Letter


def source_of(item: Ordered) -> str:
    """The source (connector topic prefix) of what the ordering stage takes."""
    if isinstance(item, TxMarker):
        return item.source
    if isinstance(item, Letter):
        return (item.topic or "").split(".", 1)[0]
    return item.position.source


def orderer_factory(topics: Sequence[str]) -> Callable[[str], TxOrderer]:
    """A new :class:`TxOrderer` for a source, from the topics the flow reads: the source's
    data collections (``<prefix>.<collection>``), and whether ``<prefix>.transaction`` is
    among them (if not, the source has no transactions to wait for)."""
    collections: dict[str, set[str]] = {}
    transactional: set[str] = set()
    for topic in topics:
        prefix, _, rest = topic.partition(".")
        if rest == "transaction":
            transactional.add(prefix)
        elif rest:
            collections.setdefault(prefix, set()).add(rest)

    def make(source: str) -> TxOrderer:
        return TxOrderer(source, frozenset(collections.get(source, ())), source in transactional)

    return make


def feed(
    orderers: dict[str, TxOrderer], new_orderer: Callable[[str], TxOrderer], value: Ordered
) -> list[Unit]:
    """``value`` through the ordering stage of its source (made on first use): the units it
    releases. ``orderers`` is the stage's state, one :class:`TxOrderer` per source."""
    source = source_of(value)
    orderer = orderers.get(source)
    if orderer is None:
        orderer = orderers[source] = new_orderer(source)
    return orderer.feed(value)


def advance(applied: dict[str, int], covers: Iterable[tuple[str, int]]) -> None:
    """Per input partition, the highest offset applied, after a unit covering ``covers``."""
    for key, offset in covers:
        if offset > applied.get(key, -1):
            applied[key] = offset


def partition_key(topic: str | None, partition: int | None) -> str:
    return f"{topic}:{partition or 0}"


@dataclass(slots=True)
class _Open:
    """A transaction whose END arrived and that is not released yet."""

    marker: TxMarker
    need: dict[str, int]  # data collection -> events, only collections the flow reads


@dataclass(slots=True)
class TxOrderer:
    """The ordering state of ONE source. ``collections``: the data collections of the source
    the flow reads; ``transactional``: whether the flow reads the source's transaction topic
    (if not, changes are released one by one as they arrive)."""

    source: str
    collections: frozenset[str]
    transactional: bool = True
    _queues: dict[str, deque[Queued]] = field(default_factory=dict)
    _collection: dict[str, str] = field(default_factory=dict)  # queue key -> data collection
    _ends: deque[_Open] = field(default_factory=deque)
    _ended: set[str] = field(default_factory=set)  # ids of the ENDs in ``_ends``
    _got: dict[str, dict[str, int]] = field(default_factory=dict)  # tx id -> collection -> n
    # ids of the latest released transactions: an END delivered again (a Connect restart, a
    # marker replayed from billing.dlq) is dropped instead of waiting for its events
    _released: dict[str, None] = field(default_factory=dict)  # insertion order: oldest first
    # per input partition, the commit order of the latest transaction event it gave and the
    # keys of the rows seen at it; an event before it, or at it with a key seen, is a copy
    _tail: dict[str, tuple[tuple[int, ...], set[str]]] = field(default_factory=dict)
    _end_high: dict[str, int] = field(default_factory=dict)  # lane -> latest END's order

    def __setstate__(self, state: tuple[Any, dict[str, Any]]) -> None:
        """A snapshot written before a field existed loads with that field's default."""
        _, slots = state
        for f in fields(self):
            if f.name in slots:
                value = slots[f.name]
            elif f.default_factory is not MISSING:
                value = f.default_factory()
            else:
                value = f.default
            setattr(self, f.name, value)

    def waiting(self) -> int:
        """Changes held back (for metrics and the stall report)."""
        return sum(len(q) for q in self._queues.values())

    def feed(self, item: Change | TxMarker | Letter) -> list[Unit]:
        """Take one record of the source (a change or a transaction marker); the units that
        became releasable, in commit order."""
        if isinstance(item, TxMarker):
            if item.status != END:
                return []  # BEGIN: an END follows with everything needed
            if self._end_again(item):
                return []  # delivered again (a Connect restart, a marker from billing.dlq)
            need = {c: n for c, n in item.collections if c in self.collections and n > 0}
            if not need:
                return []  # a transaction of tables the flow does not read
            self._ends.append(_Open(item, need))
            self._ended.add(item.id)
            return self._release()
        key = partition_key(item.topic, item.partition)
        q = self._queues.get(key)
        queued: Queued = item
        loose = isinstance(item, Letter) or not self.transactional or item.tx is None
        if isinstance(item, Change) and not loose and self._event_again(key, item):
            queued, loose = Again(item), True
        if loose and not q:
            return [_single(self.source, queued)]  # fast path: nothing in front of it
        if q is None:
            q = self._queues[key] = deque()
            self._collection[key] = item.collection or ""
        q.append(queued)
        if not loose:
            assert isinstance(item, Change) and item.tx is not None
            got = self._got.setdefault(item.tx.id, {})
            coll = item.collection or ""
            got[coll] = got.get(coll, 0) + 1
        return self._release()

    def _end_again(self, end: TxMarker) -> bool:
        """Whether an END was delivered before: it is waiting or released, or it is not after
        the latest END of its lane (the transaction topic is in commit order)."""
        if end.id in self._ended or end.id in self._released:
            return True
        if end.order is None:
            return False
        lane, n = end.order
        high = self._end_high.get(lane)
        if high is not None and n <= high:
            return True
        self._end_high[lane] = n
        return False

    def _event_again(self, key: str, change: Change) -> bool:
        """Whether a transaction event was delivered before: its transaction was released, or
        its commit order is before the latest event of its partition's, or equal to it with
        a row key already seen there."""
        if self._copy(change):
            return True
        order = change.position.commit_order()
        if order is None:
            return False
        tail = self._tail.get(key)
        if tail is None or order > tail[0]:
            self._tail[key] = (order, {change.key})
            return False
        # at the tail: the rows of one multi-row WAL record (COPY: a heap multi-insert) share
        # an LSN (seen on the stack), so another row of it is new, a row seen at it a copy
        if order < tail[0] or change.key in tail[1]:
            return True
        tail[1].add(change.key)
        return False

    def _release(self) -> list[Unit]:
        out: list[Unit] = []
        while True:
            out.extend(self._release_loose())
            if not self._ends:
                return out
            head = self._ends[0]
            blocked = self._blocked_by_orphan(head)
            if blocked is not None:
                out.append(self._take(blocked, None))
                continue
            if not self._complete(head):
                return out
            self._ends.popleft()
            self._ended.discard(head.marker.id)
            out.append(self._take(head.marker.id, head.marker))

    def _release_loose(self) -> list[Unit]:
        """Changes outside transactions at the head of their queues, and copies of events of
        transactions already released."""
        out = []
        for q in self._queues.values():
            while q and (q[0].tx is None or not self.transactional or self._copy(q[0])):
                out.append(_single(self.source, q.popleft()))
        return out

    def _copy(self, item: Queued) -> bool:
        """An event of a transaction already released (and not waiting again)."""
        tx = item.tx
        return tx is not None and tx.id in self._released and tx.id not in self._ended

    def _complete(self, head: _Open) -> bool:
        got = self._got.get(head.marker.id, {})
        for coll, n in head.need.items():
            if got.get(coll, 0) >= n:
                continue
            # missing events: released anyway once their queue holds a later event
            if not any(self._later_in(q, head.marker.id) for q in self._queues_of(coll)):
                return False
        return True

    def _queues_of(self, collection: str) -> Iterable[deque[Queued]]:
        return (q for k, q in self._queues.items() if self._collection[k] == collection)

    @staticmethod
    def _later_in(q: deque[Queued], tx_id: str) -> bool:
        """Whether the queue holds an event after the transaction's (whose events, if any,
        are at its front): it is enough to look at the last one that is not a tombstone (a
        tombstone follows its delete at once, inside the transaction's run)."""
        for item in reversed(q):
            if (isinstance(item, Letter) and item.record is None) or isinstance(item, Again):
                continue
            return item.tx is None or item.tx.id != tx_id
        return False

    def _blocked_by_orphan(self, head: _Open) -> str | None:
        """The id of a transaction without END in front of the head's events, if any. O(number
        of queues): whether the head has events in a queue is in its per-collection counts
        (every event of a transaction not released yet is in a queue), never a queue scan —
        while a consumer reads a table topic far ahead of the transaction topic, queues hold
        thousands of events and a scan per record made the stage quadratic."""
        held = self._got.get(head.marker.id)
        if not held:
            return None
        for key, q in self._queues.items():
            first = q[0] if q else None
            if first is None or first.tx is None or first.tx.id == head.marker.id:
                continue
            if first.tx.id in self._ended:
                continue  # a later transaction's events: it waits for its turn
            if held.get(self._collection[key], 0) > 0:
                return first.tx.id  # its END never came, the head's events sit behind it
        return None

    def _take(self, tx_id: str, marker: TxMarker | None) -> Unit:
        """Pop the transaction's events from the fronts of the queues and make its unit.

        Its events are at the front of each queue, but not always next to each other: the
        tombstone of each delete follows it at once, inside the run (and a dead letter may be
        one of its own events). What sits between two of its events goes with it: in
        partition order, nothing overtakes anything."""
        held = self._got.pop(tx_id, {})
        changes: list[Change] = []
        inline: list[Change] = []
        letters: list[dict[str, Any]] = []
        covers: dict[str, int] = {}
        for key, q in self._queues.items():
            left = held.get(self._collection[key], 0)
            if marker is None and q and q[0].tx is not None and q[0].tx.id == tx_id:
                left = len(q)  # a transaction without END: its whole run, counted or not
            while q and left > 0:
                c = q[0]
                if c.tx is not None and c.tx.id != tx_id:
                    break  # another transaction's: this one's missing events never came
                q.popleft()
                if isinstance(c, Letter):
                    if c.record is not None:
                        letters.append(c.record)
                elif isinstance(c, Again):
                    inline.append(c.change)
                elif c.tx is None:
                    inline.append(c)
                else:
                    changes.append(c)
                    left -= 1
                if c.offset is not None:
                    covers[key] = max(covers.get(key, -1), c.offset)
        if marker is not None:
            key = partition_key(marker.topic, marker.partition)
            covers[key] = max(covers.get(key, -1), marker.offset)
        self._released[tx_id] = None
        if len(self._released) > RECENT:
            del self._released[next(iter(self._released))]
        changes.sort(key=lambda c: c.tx.total_order if c.tx is not None else 0)
        return Unit(self.source, (*changes, *inline), tx_id, tuple(sorted(covers.items())),
                    tuple(letters))  # fmt: skip


def _single(source: str, item: Queued) -> Unit:
    key = partition_key(item.topic, item.partition)
    covers = ((key, item.offset),) if item.offset is not None else ()
    if isinstance(item, Letter):
        letters = (item.record,) if item.record is not None else ()
        return Unit(source, (), None, covers, letters)
    if isinstance(item, Again):
        return Unit(source, (item.change,), None, covers)
    return Unit(source, (item,), None, covers)
