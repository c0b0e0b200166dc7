"""Build CDC changes from rows, as the typed edge would deliver them."""

from __future__ import annotations

from billsync.change import Change, Op, SourcePosition
from billsync.model import PSA_TABLES, Row

_seq = [0]


def _pos(table: str) -> SourcePosition:
    _seq[0] += 1
    if table in PSA_TABLES:
        return SourcePosition("psa", lsn=_seq[0], tx_id=_seq[0])
    return SourcePosition("crm", file="mysql-bin.000001", pos=_seq[0])


def upsert(row: Row, op: Op = Op.UPDATE) -> Change:
    return Change(row.TABLE, op, row.key, None, row, _pos(row.TABLE))


def delete(table: str, key: str, before: Row | None = None) -> Change:
    return Change(table, Op.DELETE, key, before, None, _pos(table))
