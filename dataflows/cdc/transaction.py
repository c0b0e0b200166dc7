"""Debezium's transaction metadata (``provide.transaction.metadata``): transaction ids, the
``<prefix>.transaction`` topics and their BEGIN/END records.

What Debezium 3.6 writes (read in its source, ``TransactionMonitor``,
``AbstractTransactionStructMaker``, ``PostgresTransactionMonitor``, and seen on the local
stack, ``tests/integration/cdc/test_11_transaction_metadata.py``):

- Every streamed change carries a ``transaction`` block ``{id, total_order,
  data_collection_order}``; snapshot reads carry none (null).
- ``<topic.prefix>.transaction`` receives a BEGIN (``event_count`` and ``data_collections``
  null) when a transaction starts and an END when it commits: ``event_count`` = events of
  every captured table of the connector (its signal table too), ``data_collections`` =
  ``[{data_collection, event_count}]`` with the collection named ``schema.table``
  (PostgreSQL) or ``database.table`` (MariaDB) — the change's topic without its prefix.
  Transactions with no captured change are announced too (BEGIN, END with 0 events): on the
  PSA every ``heartbeat.action.query``, on MariaDB every transaction in the binlog.
- The Kafka key of a marker is ``{id}``, the id its value carries.
- **Ids.** MariaDB: the GTID (``domain-server-sequence``), the same on BEGIN, every change
  and END. PostgreSQL: ``"<xid>:<lsn>"`` where ``<lsn>`` is the LSN of *that* record — BEGIN,
  each change and END of one transaction carry different ids (Debezium's own
  ``TransactionMetadataIT``: "the numeric <txid> part is stable ... the <lsn> part differs
  between the BEGIN, data and END events of a transaction"). :func:`transaction_id` keeps
  the part that identifies the transaction, so a change's ``TxRef.id`` equals its markers'
  ``TxMarker.id`` for both kinds of source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastavro import parse_schema

from billsync.change import SUFFIX, TxMarker
from dataflows.cdc.convert import SchemaMismatch

STATUSES = ("BEGIN", "END")
_MARKER_FIELDS = ("status", "id", "event_count", "data_collections")
# PostgreSQL's "<xid>:<lsn>"; a MySQL GTID "<server uuid>:<n>" has letters and dashes and a
# MariaDB GTID "<domain>-<server>-<n>" no colon, so neither matches
_PG_ID = re.compile(r"([0-9]+):([0-9]+)")


class MarkerInvalid(ValueError):
    """A transaction-topic record whose values are not a BEGIN or END Debezium would write."""


def transaction_prefix(topic: str) -> str | None:
    """The connector prefix of a transaction topic, None for any other topic."""
    prefix, dot, last = topic.rpartition(".")
    if not dot or last != SUFFIX or not prefix or not all(prefix.split(".")):
        return None
    return prefix


_MARIADB_GTID = re.compile(r"([0-9]+)-[0-9]+-([0-9]+)")


def marker_order(raw: str) -> tuple[str, int] | None:
    """A marker's place in commit order from the id Debezium wrote (``TxMarker.order``):
    ``"571:53195832"`` -> ``("", 53195832)`` (PostgreSQL: an END's LSN is its commit's, seen
    on the stack: it equals the next transaction's ``source.sequence`` last commit LSN);
    ``"0-1-1134"`` -> ``("0", 1134)`` (MariaDB: GTID sequence numbers grow in binlog order
    within a replication domain); None for any other id."""
    pg = _PG_ID.fullmatch(raw)
    if pg is not None:
        return ("", int(pg.group(2)))
    gtid = _MARIADB_GTID.fullmatch(raw)
    return (gtid.group(1), int(gtid.group(2))) if gtid is not None else None


def transaction_id(raw: str) -> str:
    """The id of a source transaction from the id Debezium wrote (see the module doc):
    ``"571:53195832"`` (PostgreSQL xid:lsn) -> ``"571"``; a GTID is kept as it is."""
    pg = _PG_ID.fullmatch(raw)
    return pg.group(1) if pg is not None else raw


@dataclass(frozen=True, slots=True)
class MarkerPlan:
    """A transaction-topic writer schema, parsed once per schema id."""

    schema_id: int
    parsed: Any  # fastavro parsed schema


def compile_marker_plan(schema_id: int, schema: Any) -> MarkerPlan:
    """Check that ``schema`` is Debezium's ``TransactionMetadataValue`` and parse it."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaMismatch(f"schema {schema_id} is not an Avro record (not a transaction marker)")
    names = {f.get("name") for f in schema.get("fields", [])}
    missing = [f for f in _MARKER_FIELDS if f not in names]
    if missing:
        raise SchemaMismatch(
            f"schema {schema_id} ({schema.get('name')}) is not a Debezium transaction marker: "
            f"no {', '.join(missing)}"
        )
    return MarkerPlan(schema_id=schema_id, parsed=parse_schema(schema, named_schemas={}))


def build_marker(
    source: str, topic: str, partition: int, offset: int, value: dict[str, Any]
) -> TxMarker:
    """The typed marker of one decoded transaction-topic value; :class:`MarkerInvalid` when
    it is not a BEGIN, or an END whose counts add up."""
    status = value["status"]
    if status not in STATUSES:
        raise MarkerInvalid(f"status {status!r} is not BEGIN or END")
    raw_id = value["id"]
    if not raw_id:
        raise MarkerInvalid("empty transaction id")
    event_count = value["event_count"]
    collections: tuple[tuple[str, int], ...] = ()
    if status == "END":
        if event_count is None or event_count < 0:
            raise MarkerInvalid(f"END of {raw_id} with event_count {event_count!r}")
        items = value["data_collections"] or []
        if any(item is None or item["event_count"] < 0 for item in items):
            raise MarkerInvalid(f"END of {raw_id} with a null or negative data collection")
        collections = tuple((item["data_collection"], item["event_count"]) for item in items)
        if sum(n for _, n in collections) != event_count:
            raise MarkerInvalid(
                f"END of {raw_id}: event_count {event_count} is not the sum of its data "
                f"collections {dict(collections)}"
            )
    return TxMarker(
        source=source,
        status=status,
        id=transaction_id(raw_id),
        event_count=event_count,
        collections=collections,
        topic=topic,
        partition=partition,
        offset=offset,
        order=marker_order(raw_id),
    )
