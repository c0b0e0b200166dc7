"""Typed change objects: what every stage after the edge sees instead of Debezium dicts."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from dataflows.model import Row


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

    def __str__(self) -> str:
        if self.lsn is not None:
            return f"{self.source}:lsn={self.lsn}:tx={self.tx_id}"
        return f"{self.source}:{self.file}:{self.pos}:row={self.row}" + (
            f":gtid={self.gtid}" if self.gtid else ""
        )


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
