"""Source positions of the ledger never go backwards (SPEC 4, order).

For every item (``source_type``, ``source_id``) and every source (the prefix of
``source_position``: ``psa``, ``crm``, ``erp``, ...), the positions of the item's ledger
entries, taken in ``seq`` order, never go backwards in that source's COMMIT order
(:meth:`billsync.change.SourcePosition.commit_order`). An entry posted from an older
source state than an entry before it means the flow applied that source's changes out of
commit order (or applied a stale change): the ledger then tells a story the source never
lived, even when its sums end right.

Entries without a source position (``mappings-changed`` re-evaluations, rows written without
one), PostgreSQL positions without a commit LSN (snapshot reads, entries written before commit
LSNs were recorded: not in the commit order) and positions of different sources are never
compared. Each entry is compared with the
newest position seen so far for its item and source, so one entry out of order is reported
once, and every later entry still behind that newest position too.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import groupby
from typing import Any

from sqlalchemy import Connection, RowMapping, select

from billsync.change import SourcePosition
from sinks.erp import tables as t

# rows fetched per round trip: the check streams the ledger once, it never holds all of it
FETCH_ROWS = 10_000


@dataclass(frozen=True, slots=True)
class PositionRegression:
    """A ledger entry whose source position is behind an earlier entry's of the same item
    and source: ``previous`` (entry ``previous_seq``) was posted first, ``position`` (entry
    ``seq``) after it, yet ``position`` comes first in the source's commit order."""

    item: str  # "<source_type>:<source_id>", as the audit's differences name items
    source: str
    previous_seq: int
    previous: str
    seq: int
    position: str


def position_regressions(rows: Iterable[Mapping[Any, Any]]) -> Iterator[PositionRegression]:
    """The regressions among ledger ``rows`` (``source_type``, ``source_id``, ``seq``,
    ``source_position``), which must come grouped by item and in ``seq`` order within one
    (:func:`ledger_positions` reads them so)."""
    for (source_type, source_id), entries in groupby(
        rows, key=lambda r: (r["source_type"], r["source_id"])
    ):
        newest: dict[str, tuple[tuple[int, ...], int, str]] = {}  # source -> (order, seq, text)
        for r in entries:
            text = r["source_position"]
            position = SourcePosition.parse(text)
            order = position.commit_order() if position is not None else None
            if position is None or order is None:
                continue
            seen = newest.get(position.source)
            if seen is None or order >= seen[0]:
                newest[position.source] = (order, r["seq"], text)
                continue
            yield PositionRegression(
                item=f"{source_type}:{source_id}",
                source=position.source,
                previous_seq=seen[1],
                previous=seen[2],
                seq=r["seq"],
                position=text,
            )


def ledger_positions(conn: Connection) -> Iterator[RowMapping]:
    """Every ledger entry's (item, seq, source_position) in one ordered pass (the item/seq
    index ``ix_ebt_item_seq`` serves the order), streamed in chunks of :data:`FETCH_ROWS`."""
    tx = t.erp_billing_transactions
    query = (
        select(tx.c.source_type, tx.c.source_id, tx.c.seq, tx.c.source_position)
        .order_by(tx.c.source_type, tx.c.source_id, tx.c.seq)
        .execution_options(yield_per=FETCH_ROWS)
    )
    yield from conn.execute(query).mappings()


def check(conn: Connection) -> list[PositionRegression]:
    """:func:`position_regressions` of the ERP's whole ledger."""
    return list(position_regressions(ledger_positions(conn)))
