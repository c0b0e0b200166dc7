"""Typed change objects: what every stage after the edge sees instead of Debezium dicts."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from billsync.model import Row

SUFFIX = "transaction"  # Debezium's ``topic.transaction`` default: <topic.prefix>.transaction


def transaction_topic(prefix: str) -> str:
    """The transaction topic (BEGIN/END records, :class:`TxMarker`) of the connector with
    ``topic.prefix`` = ``prefix``."""
    return f"{prefix}.{SUFFIX}"


class Op(enum.StrEnum):
    """Debezium operation codes. A snapshot read (``r``) counts as an insert (SPEC 1)."""

    CREATE = "c"
    UPDATE = "u"
    DELETE = "d"
    READ = "r"


@dataclass(frozen=True, slots=True, order=True)
class SourcePosition:
    """Where a change sits in its source's log.

    PostgreSQL: ``lsn`` and ``tx_id``. MariaDB: binlog ``file`` / ``pos`` and ``gtid``.
    ``row`` is the event's ordinal within its binlog event or transaction. ``order=True``
    compares positions of one source (file names sort, positions are integers).
    """

    source: str  # connector topic prefix: "psa" | "crm" | another registered source
    lsn: int | None = None
    # PostgreSQL: the LSN of the last commit before this event (Debezium ``source.sequence``
    # [last commit LSN, LSN]); (commit_lsn, lsn) is the source's commit order, the event
    # LSN alone is not (a transaction that began earlier and committed later has lower LSNs)
    commit_lsn: int | None = None
    tx_id: int | None = None
    file: str | None = None
    pos: int | None = None
    row: int = 0
    gtid: str | None = None
    ts_ms: int | None = None

    def order(self) -> int | tuple[int, int, int] | None:
        """A comparable key of this position within its source (commit order of the log):
        the LSN (PostgreSQL), or (binlog file number, position, row) (MariaDB); None when it
        cannot be compared. Keys of different sources are never compared."""
        if self.lsn is not None:
            return self.lsn
        if self.file is None or self.pos is None:
            return None
        digits = self.file.rsplit(".", 1)[-1]
        return (int(digits), self.pos, self.row) if digits.isdigit() else None

    def commit_order(self) -> tuple[int, ...] | None:
        """A comparable key of this position in its source's COMMIT order (SPEC 4):
        (last commit LSN, LSN) for PostgreSQL, (binlog file number, position, row) for
        MariaDB (the binlog is written in commit order); None when it cannot be compared —
        a PostgreSQL position without its last commit LSN: a snapshot read (read at a point
        of the stream, not committed in it: an incremental snapshot's read comes after
        changes it is not "later" than) or a position written before ``commit_lsn`` existed."""
        if self.lsn is not None:
            return (self.commit_lsn, self.lsn) if self.commit_lsn is not None else None
        order = self.order()
        return order if isinstance(order, tuple) else None

    @classmethod
    def parse(cls, text: str | None) -> SourcePosition | None:
        """The position written by :meth:`__str__` (as stored in ``source_position``), or
        None for any other text (``mappings-changed``, a bench id, None).

        ``ts_ms`` is not part of the text, so ``parse(str(p)) == replace(p, ts_ms=None)``.
        """
        if not text:
            return None
        source, sep, rest = text.partition(":")
        if not source or not sep:
            return None
        try:
            if rest.startswith("lsn="):
                return cls._parse_pg(source, rest)
            return cls._parse_binlog(source, rest)
        except ValueError:
            return None

    @classmethod
    def _parse_pg(cls, source: str, rest: str) -> SourcePosition | None:
        """``lsn=<n>:tx=<n|None>[:commit=<n>]``."""
        fields = dict(part.partition("=")[::2] for part in rest.split(":"))
        if set(fields) - {"lsn", "tx", "commit"} or "tx" not in fields:
            return None
        tx, commit = fields["tx"], fields.get("commit")
        return cls(
            source,
            lsn=int(fields["lsn"]),
            tx_id=None if tx == "None" else int(tx),
            commit_lsn=None if commit is None else int(commit),
        )

    @classmethod
    def _parse_binlog(cls, source: str, rest: str) -> SourcePosition | None:
        """``<file>:<pos>:row=<n>[:gtid=<gtid>]`` (a MySQL GTID may itself hold a colon)."""
        parts = rest.split(":", 3)
        if len(parts) < 3 or not parts[0] or not parts[2].startswith("row="):
            return None
        gtid: str | None = None
        if len(parts) == 4:
            if not parts[3].startswith("gtid="):
                return None
            gtid = parts[3].removeprefix("gtid=")
        return cls(
            source, file=parts[0], pos=int(parts[1]), row=int(parts[2][4:]), gtid=gtid or None
        )

    def __str__(self) -> str:
        if self.lsn is not None:
            commit = f":commit={self.commit_lsn}" if self.commit_lsn is not None else ""
            return f"{self.source}:lsn={self.lsn}:tx={self.tx_id}{commit}"
        return f"{self.source}:{self.file}:{self.pos}:row={self.row}" + (
            f":gtid={self.gtid}" if self.gtid else ""
        )


@dataclass(frozen=True, slots=True)
class TxRef:
    """The source transaction a change belongs to (Debezium's ``transaction`` block, present
    when the connector runs with ``provide.transaction.metadata``): its id and the change's
    ordinal among all events of that transaction.

    ``id`` is the transaction's own id, equal to the ``TxMarker.id`` of its BEGIN and END:
    the GTID (MariaDB), the xid (PostgreSQL: Debezium writes ``"<xid>:<lsn of the record>"``,
    different on every record of one transaction; the edge keeps the xid,
    :func:`dataflows.cdc.transaction.transaction_id`). ``total_order`` starts at 1 and counts
    every event of the transaction across the connector's captured tables (its signal table
    too), in the order Debezium emitted them."""

    id: str
    total_order: int


@dataclass(frozen=True, slots=True)
class TxMarker:
    """One record of a source's transaction topic (``<prefix>.transaction``): a BEGIN, or an
    END with the number of events the transaction wrote per data collection
    (``schema.table`` for PostgreSQL, ``database.table`` for MariaDB — ``Change.collection``
    of its changes).

    ``id`` as in :class:`TxRef`. BEGIN: ``event_count`` None, ``collections`` empty. END:
    ``event_count`` = the sum of ``collections`` (the edge refuses anything else), in the
    order Debezium wrote them; it counts every captured table of the connector, so a
    collection the flow does not read (``public.debezium_signal``) can appear, and a
    transaction with no captured change (a heartbeat) ends with 0 events.

    ``order``: the marker's place in the source's commit order, ``(lane, n)``, comparable
    with the other markers of its lane: PostgreSQL ``("", LSN)`` (an END's id carries its
    commit LSN), MariaDB ``("<domain>", GTID sequence)``; None for an id of another form.
    An END not after the latest END of its lane is one delivered again."""

    source: str
    status: str  # "BEGIN" | "END"
    id: str
    event_count: int | None
    collections: tuple[tuple[str, int], ...]  # END: (data collection, events)
    topic: str
    partition: int
    offset: int
    order: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One row change of one source table, decoded and typed.

    ``before`` is None for inserts and snapshot reads (and for updates when the table's
    replica identity does not carry it); ``after`` is None for deletes. A delete is explicit:
    ``op == Op.DELETE`` with the deleted row's key in ``key``.
    """

    table: str
    op: Op
    key: str
    before: Row | None
    after: Row | None
    position: SourcePosition
    source_ts: datetime | None = None
    # where the Kafka record came from, for logs, metrics and the DLQ
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    tx: TxRef | None = None  # None: a snapshot read, or a connector without tx metadata

    @property
    def collection(self) -> str | None:
        """Debezium's data collection of the change (the topic without its prefix)."""
        return self.topic.split(".", 1)[1] if self.topic and "." in self.topic else None

    @property
    def is_delete(self) -> bool:
        return self.op is Op.DELETE


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A Kafka tombstone (null value) that follows a Debezium delete: compaction only.

    Decoded explicitly so the flow can count it; it carries no change of its own.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
