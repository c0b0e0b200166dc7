"""Debezium's transaction metadata at the edge: the ``transaction`` block of a change, the
PostgreSQL ``source.sequence`` and the BEGIN/END records of ``<prefix>.transaction``.

The shapes are those the local stack's connectors write (``test_11_transaction_metadata``
checks them live): PostgreSQL ids are ``"<xid>:<lsn of the record>"``, MariaDB ids GTIDs.
"""

from __future__ import annotations

from typing import Any

import pytest

from billsync.change import Change, SourcePosition, Tombstone, TxMarker, TxRef, transaction_topic
from billsync.errors import RecordError
from dataflows.cdc.deadletter import dead_letter
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.cdc.schemas import DictSchemaSource
from dataflows.cdc.transaction import marker_order, transaction_id, transaction_prefix
from ops.bench import debezium as dbz
from tests.unit.cdc.samples import envelope, sample_rows, tx_marker

TX_SCHEMA_ID = 40
KEY = b"\x00\x00\x00\x00\x29tx-key"


def _decoder(*tables: str) -> ChangeDecoder:
    schemas = DictSchemaSource({TX_SCHEMA_ID: dbz.TX_VALUE})
    for i, table in enumerate(tables, start=1):
        topic = dbz.topic_of(table)
        pg = dbz.is_pg(table)
        schemas.add(i, dbz.envelope_schema(topic, dbz.COLUMNS[table], pg=pg, transaction=True))
    return ChangeDecoder(schemas)


def _change(table: str, schema_id: int = 1, **fields: Any) -> Change:
    pg = dbz.is_pg(table)
    topic = dbz.topic_of(table)
    schema = dbz.envelope_schema(topic, dbz.COLUMNS[table], pg=pg, transaction=True)
    _, wire = sample_rows(table, 1)
    value = dbz.framed(schema_id, schema, envelope("c", None, wire, pg=pg, **fields))
    decoder = _decoder(table)
    change = decoder.decode(topic, 0, 9, None, value)
    assert isinstance(change, Change)
    return change


def _marker(record: dict[str, Any], topic: str = "psa.transaction", offset: int = 3) -> Any:
    value = dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, record)
    return _decoder().decode(topic, 0, offset, KEY, value)


# --- the transaction block of a change ------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "block", "expected"),
    [
        # PostgreSQL: "<xid>:<lsn>", the lsn differs per record -> the xid
        ("timesheets", dbz.tx_block("9533:4618425776", 2), TxRef("9533", 2)),
        ("projects", dbz.tx_block("9533:4618423008", 1), TxRef("9533", 1)),
        ("accounting_periods", dbz.tx_block("12:99", 7, 3), TxRef("12", 7)),
        # MariaDB: the GTID, the same on every record of the transaction
        ("contract_rates", dbz.tx_block("0-1-1134", 1), TxRef("0-1-1134", 1)),
        ("contracts", dbz.tx_block("0-1-1134", 2, 1), TxRef("0-1-1134", 2)),
        # a snapshot read, or streaming without tx metadata: null
        ("timesheets", None, None),
        ("contracts", None, None),
    ],
)
def test_the_transaction_block_becomes_a_tx_ref(
    table: str, block: dict[str, Any] | None, expected: TxRef | None
) -> None:
    assert _change(table, transaction=block).tx == expected


def test_an_envelope_without_the_transaction_field_has_no_tx_ref() -> None:
    topic = dbz.topic_of("timesheets")
    schema = dbz.envelope_schema(topic, dbz.COLUMNS["timesheets"], pg=True)
    _, wire = sample_rows("timesheets", 1)
    value = dbz.framed(1, schema, envelope("c", None, wire, pg=True))
    change = ChangeDecoder(DictSchemaSource({1: schema})).decode(topic, 0, 1, None, value)
    assert isinstance(change, Change) and change.tx is None


# --- source.sequence: the last commit LSN ---------------------------------------------------


@pytest.mark.parametrize(
    ("sequence", "commit_lsn", "commit_order"),
    [
        ('["4618423008","4618425776"]', 4618423008, (4618423008, 123_456_789)),
        ('[null,"4618390152"]', None, None),  # a snapshot read: not in the commit order
        ('["7",null]', 7, (7, 123_456_789)),
        (None, None, None),
    ],
)
def test_postgresql_sequence_gives_the_last_commit_lsn(
    sequence: str | None, commit_lsn: int | None, commit_order: tuple[int, int] | None
) -> None:
    position = _change("timesheets", sequence=sequence).position
    assert position.commit_lsn == commit_lsn
    assert position.lsn == 123_456_789
    assert position.commit_order() == commit_order


def test_a_transaction_that_commits_later_orders_after_one_that_began_later() -> None:
    """T1 writes at LSN 100, T2 writes at LSN 150 and commits first (commit LSN 160): T1's
    change carries last commit 160 when it is decoded after T2's commit."""
    t2 = _change("timesheets", lsn=150, sequence='["90","150"]').position
    t1 = _change("timesheets", lsn=100, sequence='["160","100"]').position
    assert t1.lsn == 100 and t2.lsn == 150  # the LSN alone puts T1 first
    assert t2.commit_order() == (90, 150) and t1.commit_order() == (160, 100)
    assert (90, 150) < (160, 100)  # commit order puts T2 first


def test_mariadb_sequence_is_not_read() -> None:
    position = _change("contracts", sequence='["x","y"]').position
    assert position.commit_lsn is None and position.commit_order() == (3, 4321, 2)


@pytest.mark.parametrize(
    "sequence", ['["x","1"]', '{"a": 1}', '["1"]', "[1,2]", "not json", '["1","2","3"]']
)
def test_a_malformed_sequence_is_an_undecodable_record(sequence: str) -> None:
    with pytest.raises(RecordError) as info:
        _change("timesheets", sequence=sequence)
    assert info.value.context.extra["kind"] == "UndecodableRecord"
    assert info.value.context.offset == 9


# --- transaction topics ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "record", "expected"),
    [
        (
            "psa.transaction",
            tx_marker("BEGIN", "9533:4618423008"),
            TxMarker("psa", "BEGIN", "9533", None, (), "psa.transaction", 0, 3, ("", 4618423008)),
        ),
        (
            "psa.transaction",
            tx_marker("END", "9533:4618428640", {"public.projects": 2, "public.milestones": 1}),
            TxMarker(
                "psa", "END", "9533", 3,
                (("public.projects", 2), ("public.milestones", 1)), "psa.transaction", 0, 3,
                ("", 4618428640),
            ),
        ),
        (
            "crm.transaction",
            tx_marker("BEGIN", "0-1-1134"),
            TxMarker("crm", "BEGIN", "0-1-1134", None, (), "crm.transaction", 0, 3, ("0", 1134)),
        ),
        (
            "crm.transaction",
            tx_marker("END", "0-1-1134", {"crm.contract_amendments": 1,
                                              "crm.contract_rates": 1}),
            TxMarker(
                "crm", "END", "0-1-1134", 2,
                (("crm.contract_amendments", 1), ("crm.contract_rates", 1)),
                "crm.transaction", 0, 3, ("0", 1134),
            ),
        ),
        (  # a heartbeat transaction: nothing captured
            "erp.transaction",
            tx_marker("END", "9536:4618429272", {}),
            TxMarker("erp", "END", "9536", 0, (), "erp.transaction", 0, 3, ("", 4618429272)),
        ),
        (  # a third source
            "psa_eu.transaction",
            tx_marker("BEGIN", "5:6"),
            TxMarker("psa_eu", "BEGIN", "5", None, (), "psa_eu.transaction", 0, 3, ("", 6)),
        ),
    ],
)  # fmt: skip
def test_transaction_topic_records_become_markers(
    topic: str, record: dict[str, Any], expected: TxMarker
) -> None:
    assert _marker(record, topic) == expected


def test_markers_and_changes_of_one_transaction_share_the_id() -> None:
    """On PostgreSQL BEGIN, each change and END carry different raw ids (xid:lsn)."""
    begin = _marker(tx_marker("BEGIN", "9533:4618423008"))
    end = _marker(tx_marker("END", "9533:4618428640", {"public.timesheets": 1}))
    change = _change("timesheets", transaction=dbz.tx_block("9533:4618425776", 1))
    assert change.tx is not None
    assert begin.id == end.id == change.tx.id == "9533"
    assert dict(end.collections) == {change.collection: 1}


def test_a_null_value_on_a_transaction_topic_is_a_tombstone() -> None:
    assert _decoder().decode("psa.transaction", 0, 4, KEY, None) == Tombstone(
        "psa.transaction", 0, 4, KEY
    )


class _Counting(DictSchemaSource):
    def __init__(self, schemas: dict[int, Any]) -> None:
        super().__init__(schemas)
        self.fetched: list[int] = []

    def fetch(self, schema_id: int) -> Any:
        self.fetched.append(schema_id)
        return super().fetch(schema_id)


def test_marker_plans_are_cached_per_schema_id() -> None:
    schemas = _Counting({TX_SCHEMA_ID: dbz.TX_VALUE})
    decoder = ChangeDecoder(schemas)
    for offset in range(3):
        value = dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, tx_marker("BEGIN", f"{offset}:1"))
        assert isinstance(decoder.decode("crm.transaction", 0, offset, KEY, value), TxMarker)
    assert schemas.fetched == [TX_SCHEMA_ID]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("571:53195832", "571"),  # PostgreSQL xid:lsn
        ("0-1-42", "0-1-42"),  # MariaDB GTID
        ("3E11FA47-71CA-11E1-9E33-C80AA9429562:23", "3E11FA47-71CA-11E1-9E33-C80AA9429562:23"),
        ("file=mariadb-bin.000001,pos=4", "file=mariadb-bin.000001,pos=4"),  # binlog, no GTID
        ("571", "571"),
    ],
)
def test_transaction_ids(raw: str, expected: str) -> None:
    assert transaction_id(raw) == expected


@pytest.mark.parametrize(
    ("topic", "prefix"),
    [
        ("psa.transaction", "psa"),
        ("psa_eu.transaction", "psa_eu"),
        ("transaction", None),
        (".transaction", None),
        ("psa.public.timesheets", None),
        ("psa.transactions", None),
    ],
)
def test_transaction_topic_names(topic: str, prefix: str | None) -> None:
    assert transaction_prefix(topic) == prefix
    if prefix is not None:
        assert transaction_topic(prefix) == topic


# --- poison on a transaction topic: dead letters with their context -------------------------

END_OK = tx_marker("END", "9:10", {"public.timesheets": 1})


@pytest.mark.parametrize(
    ("value", "kind", "message"),
    [
        (b"\x07garbage", "BadFraming", "magic byte"),
        (dbz.framed(41, dbz.TX_VALUE, END_OK), "UnknownSchemaId", "41"),
        (dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, END_OK)[:-3], "UndecodableRecord", "Error: "),
        (dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, END_OK) + b"\x00", "SchemaMismatch", "bytes left"),
        (
            dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, {**END_OK, "status": "COMMIT"}),
            "BadTransactionMarker", "'COMMIT' is not BEGIN or END",
        ),
        (
            dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, {**END_OK, "event_count": None}),
            "BadTransactionMarker", "event_count None",
        ),
        (
            dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, {**END_OK, "event_count": 2}),
            "BadTransactionMarker", "not the sum",
        ),
        (
            dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, {**END_OK, "data_collections": [None]}),
            "BadTransactionMarker", "null or negative",
        ),
        (
            dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, {**END_OK, "id": ""}),
            "BadTransactionMarker", "empty transaction id",
        ),
    ],
    ids=["framing", "unknown-id", "truncated", "trailing", "status", "no-count", "sum",
         "null-collection", "empty-id"],
)  # fmt: skip
def test_poison_transaction_records_are_dead_letters(value: bytes, kind: str, message: str) -> None:
    with pytest.raises(RecordError, match=message) as info:
        _decoder().decode("crm.transaction", 0, 17, KEY, value)
    letter = dead_letter(info.value, now_ms=1_700_000_000_000)
    assert letter["error_type"] == kind
    assert (letter["topic"], letter["partition"], letter["offset"]) == ("crm.transaction", 0, 17)
    assert letter["key"] == KEY and letter["value"] == value


def test_a_table_envelope_on_a_transaction_topic_is_a_schema_mismatch() -> None:
    """The writer schema decides: an envelope id on a transaction topic is refused."""
    topic = dbz.topic_of("timesheets")
    schema = dbz.envelope_schema(topic, dbz.COLUMNS["timesheets"], pg=True, transaction=True)
    _, wire = sample_rows("timesheets", 1)
    value = dbz.framed(1, schema, envelope("c", None, wire, pg=True))
    with pytest.raises(RecordError, match="not a Debezium transaction marker: no status") as info:
        _decoder("timesheets").decode("psa.transaction", 0, 2, KEY, value)
    assert info.value.context.extra["kind"] == "SchemaMismatch"


def test_a_marker_on_a_table_topic_is_a_schema_mismatch() -> None:
    value = dbz.framed(TX_SCHEMA_ID, dbz.TX_VALUE, END_OK)
    with pytest.raises(RecordError, match="not a Debezium envelope") as info:
        _decoder().decode("psa.public.timesheets", 0, 2, KEY, value)
    assert info.value.context.extra["kind"] == "SchemaMismatch"


def test_position_equality_includes_the_commit_lsn() -> None:
    """Two deliveries of one change compare equal; commit_lsn is part of the position."""
    a = _change("timesheets", sequence='["5","123456789"]').position
    assert a == SourcePosition("psa", lsn=123_456_789, commit_lsn=5, tx_id=777,
                               ts_ms=1_717_000_000_123)  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "order"),
    [
        ("9533:4618428640", ("", 4618428640)),  # PostgreSQL: the END's commit LSN
        ("0-1-1134", ("0", 1134)),  # MariaDB GTID: domain 0, sequence 1134
        ("3-7-12", ("3", 12)),
        ("3E11FA47-71CA-11E1-9E33-C80AA9429562:23", None),  # a MySQL GTID: not ordered here
        ("abc", None),
    ],
)
def test_marker_order_from_the_raw_id(raw: str, order: tuple[str, int] | None) -> None:
    assert marker_order(raw) == order
