"""The typed CDC edge against Debezium-shaped Avro records built here (no services)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from billsync.change import Change, Op, SourcePosition, Tombstone
from billsync.errors import RecordError
from billsync.model import ROW_TYPES, Contract, Timesheet
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.cdc.schemas import DictSchemaSource, Schema
from ops.bench import debezium as dbz
from tests.unit.cdc.samples import (
    CONNECT_DATE,
    CONNECT_TS,
    MICRO_TS,
    MILLI_TS,
    NANO_TS,
    TINYINT,
    envelope,
    sample_rows,
    to_wire,
)

TABLES = sorted(dbz.COLUMNS)


class CountingSource(DictSchemaSource):
    """A dict-backed schema lookup that counts lookups (to check the decoder's cache)."""

    def __init__(self) -> None:
        super().__init__()
        self.fetches = 0

    def fetch(self, schema_id: int) -> Schema:
        self.fetches += 1
        return super().fetch(schema_id)


def _setup(table: str, columns: list[dbz.Column] | None = None, schema_id: int = 7) -> Any:
    pg = dbz.is_pg(table)
    topic = dbz.topic_of(table)
    schema = dbz.envelope_schema(topic, columns or dbz.COLUMNS[table], pg=pg)
    source = CountingSource()
    source.add(schema_id, schema)
    return ChangeDecoder(source), source, topic, schema, pg


def _decode(decoder: ChangeDecoder, topic: str, value: bytes | None, offset: int = 5) -> Any:
    return decoder.decode(topic, 0, offset, b"\x00\x00\x00\x00\x07key", value)


@pytest.mark.parametrize("table", TABLES)
@pytest.mark.parametrize("op", ["c", "r", "u", "d"])
def test_every_table_and_operation_becomes_a_typed_change(table: str, op: str) -> None:
    decoder, _, topic, schema, pg = _setup(table)
    typed_before, wire_before = sample_rows(table, 1)
    typed_after, wire_after = sample_rows(table, 2)
    # an update keeps the primary key
    pk = next(iter(typed_before))
    typed_after[pk], wire_after[pk] = typed_before[pk], wire_before[pk]
    before = wire_before if op in ("u", "d") else None
    after = wire_after if op != "d" else None
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope(op, before, after, pg=pg)))

    row_type = ROW_TYPES[table]
    assert isinstance(change, Change)
    assert change.table == table and change.op is Op(op)
    assert change.key == str(typed_before[pk])
    assert change.before == (row_type(**typed_before) if before else None)
    assert change.after == (row_type(**typed_after) if after else None)
    assert change.is_delete is (op == "d")
    assert (change.topic, change.partition, change.offset) == (topic, 0, 5)
    if pg:
        assert change.position == SourcePosition(
            source=topic.split(".")[0],
            lsn=123_456_789,
            commit_lsn=100,  # source.sequence ["100","200"]: the last commit LSN
            tx_id=777,
            ts_ms=1_717_000_000_123,
        )  # the source is the topic prefix: psa, or erp for the period calendar
    else:
        assert change.position == SourcePosition(
            source="crm",
            file="mariadb-bin.000003",
            pos=4321,
            row=2,
            gtid="0-1-42",
            ts_ms=1_717_000_000_456,
        )
    assert change.source_ts is not None and change.source_ts.tzinfo is not None
    assert change.source_ts == datetime(1970, 1, 1, tzinfo=UTC) + timedelta(
        milliseconds=change.position.ts_ms or 0
    )


@pytest.mark.parametrize("table", TABLES)
def test_tombstone_is_explicit(table: str) -> None:
    decoder, source, topic, _, _ = _setup(table)
    result = decoder.decode(topic, 3, 99, b"k", None)
    assert result == Tombstone(topic=topic, partition=3, offset=99, key=b"k")
    assert source.fetches == 0


def test_typed_values_have_the_contract_types() -> None:
    decoder, _, topic, schema, pg = _setup("timesheets")
    _, wire = sample_rows("timesheets", 4)
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    row = change.after
    assert isinstance(row, Timesheet)
    assert isinstance(row.timesheet_id, int) and isinstance(row.billable, bool)
    assert isinstance(row.hours, Decimal) and isinstance(row.work_date, date)
    assert row.updated_at is not None and row.updated_at.tzinfo is not None
    assert row.updated_at.microsecond == 123456


# --- decimals ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount", ["0.00", "7.50", "-0.01", "999999999999.99", "0.10", "123456789012.34"]
)
def test_decimals_keep_value_and_column_scale(amount: str) -> None:
    decoder, _, topic, schema, pg = _setup("milestones")
    _, wire = sample_rows("milestones", 1)
    wire["amount"] = Decimal(amount)
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    assert str(change.after.amount) == amount
    assert change.after.amount.as_tuple().exponent == -2


def test_hours_scale_two_even_when_written_whole() -> None:
    decoder, _, topic, schema, pg = _setup("timesheets")
    _, wire = sample_rows("timesheets", 1)
    wire["hours"] = Decimal("8")
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    assert str(change.after.hours) == "8.00"


def test_variable_scale_and_string_decimals_are_read() -> None:
    variable = {
        "type": "record",
        "name": "VariableScaleDecimal",
        "namespace": "io.debezium.data",
        "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}],
        "connect.name": "io.debezium.data.VariableScaleDecimal",
    }
    columns = [
        c if c.name != "cap_amount" else dbz.Column("cap_amount", variable, nullable=True)
        for c in dbz.COLUMNS["contracts"]
    ]
    columns = [
        c if c.name != "retainer_hours_monthly" else dbz.Column(c.name, "string", nullable=True)
        for c in columns
    ]
    decoder, _, topic, schema, pg = _setup("contracts", columns)
    _, wire = sample_rows("contracts", 1)
    wire["cap_amount"] = {"scale": 3, "value": (-12345).to_bytes(2, "big", signed=True)}
    wire["retainer_hours_monthly"] = "40.50"
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    assert change.after.cap_amount == Decimal("-12.345")
    assert str(change.after.retainer_hours_monthly) == "40.50"


def test_double_decimals_are_refused() -> None:
    columns = [
        c if c.name != "hours" else dbz.Column("hours", "double") for c in dbz.COLUMNS["timesheets"]
    ]
    decoder, _, topic, schema, pg = _setup("timesheets", columns)
    _, wire = sample_rows("timesheets", 1)
    wire["hours"] = 7.5
    value = dbz.framed(7, schema, envelope("c", None, wire, pg=pg))
    with pytest.raises(RecordError, match=r"SchemaMismatch.*column hours.*double") as info:
        _decode(decoder, topic, value)
    assert info.value.context.extra["kind"] == "SchemaMismatch"
    assert info.value.context.value == value


def test_decimal_without_precision_is_still_read() -> None:
    no_precision = dbz.decimal_type(14, 2)
    del no_precision["precision"]
    columns = [
        c if c.name != "amount" else dbz.Column("amount", no_precision)
        for c in dbz.COLUMNS["milestones"]
    ]
    decoder, _, topic, _, pg = _setup("milestones", columns)
    _, wire = sample_rows("milestones", 1)
    wire["amount"] = Decimal("1234.56")
    writer_schema = dbz.envelope_schema(topic, dbz.COLUMNS["milestones"], pg=pg)
    value = dbz.framed(7, writer_schema, envelope("c", None, wire, pg=pg))
    assert _decode(decoder, topic, value).after.amount == Decimal("1234.56")


# --- times and booleans ---------------------------------------------------------------------


@pytest.mark.parametrize("avro", [MICRO_TS, MILLI_TS, NANO_TS, CONNECT_TS, dbz.ZONED])
def test_every_timestamp_encoding_becomes_an_aware_datetime(avro: dict[str, Any]) -> None:
    columns = [
        c if c.name != "updated_at" else dbz.Column("updated_at", avro)
        for c in dbz.COLUMNS["accounts"]
    ]
    decoder, _, topic, schema, pg = _setup("accounts", columns)
    _, wire = sample_rows("accounts", 1)
    moment = datetime(2024, 2, 29, 23, 59, 58, 250000, tzinfo=UTC)
    wire["updated_at"] = moment if avro is CONNECT_TS else to_wire(avro, moment)
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("u", wire, wire, pg=pg)))
    assert change.after.updated_at == moment
    assert change.after.updated_at.tzinfo is not None


def test_zoned_timestamp_with_offset_keeps_the_instant() -> None:
    decoder, _, topic, schema, pg = _setup("accounts")
    _, wire = sample_rows("accounts", 1)
    wire["updated_at"] = "2024-06-01T08:00:00.5+02:00"
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    got = change.after.updated_at
    assert got == datetime(2024, 6, 1, 6, 0, 0, 500000, tzinfo=UTC)
    assert got.utcoffset() == timezone(timedelta(hours=2)).utcoffset(None)


def test_connect_date_and_debezium_date() -> None:
    columns = [
        c if c.name != "effective_to" else dbz.Column("effective_to", CONNECT_DATE, nullable=True)
        for c in dbz.COLUMNS["contract_rates"]
    ]
    decoder, _, topic, schema, pg = _setup("contract_rates", columns)
    _, wire = sample_rows("contract_rates", 1)
    wire["effective_from"] = (date(1969, 12, 31) - date(1970, 1, 1)).days
    wire["effective_to"] = date(2099, 12, 31)
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    assert change.after.effective_from == date(1969, 12, 31)
    assert change.after.effective_to == date(2099, 12, 31)


def test_mariadb_tinyint_one_is_a_boolean() -> None:
    columns = [
        c if c.name != "active" else dbz.Column("active", TINYINT) for c in dbz.COLUMNS["employees"]
    ]
    decoder, _, topic, schema, pg = _setup("employees", columns)
    _, wire = sample_rows("employees", 1)
    for raw, expected in ((1, True), (0, False)):
        wire["active"] = raw
        value = dbz.framed(7, schema, envelope("c", None, wire, pg=pg))
        assert _decode(decoder, topic, value).after.active is expected
    wire["active"] = 2
    with pytest.raises(RecordError, match=r"UndecodableRecord.*not a boolean"):
        _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))


# --- NULL vs absent, unicode, extra columns -------------------------------------------------


def test_null_stays_none_and_empty_string_stays_empty() -> None:
    decoder, _, topic, schema, pg = _setup("contracts")
    _, wire = sample_rows("contracts", 1)
    wire |= {"end_date": None, "cap_amount": None, "retainer_hours_monthly": None}
    wire["contract_number"] = ""
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    row = change.after
    assert isinstance(row, Contract)
    assert row.end_date is None and row.cap_amount is None and row.retainer_hours_monthly is None
    assert row.contract_number == ""


def test_contract_column_absent_from_an_older_schema_is_none() -> None:
    columns = [c for c in dbz.COLUMNS["timesheets"] if c.name != "notes"]
    decoder, _, topic, schema, pg = _setup("timesheets", columns)
    _, wire = sample_rows("timesheets", 1)
    del wire["notes"]
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    assert change.after.notes is None and change.after.hours is not None


@pytest.mark.parametrize(
    "text",
    [
        "Zoë Ünïcødé",
        "日本語のメモ",
        "emoji 🧾💶",
        "O'Brien; DROP TABLE timesheets;--",
        "tab\tnew\nline",
        "",
    ],
)
def test_unicode_and_sql_metacharacters_round_trip(text: str) -> None:
    decoder, _, topic, schema, pg = _setup("timesheets")
    _, wire = sample_rows("timesheets", 1)
    wire["notes"] = text
    change = _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    assert change.after.notes == text


@pytest.mark.parametrize("table", ["timesheets", "contracts"])
def test_extra_column_added_while_running_is_ignored(table: str) -> None:
    columns = [*dbz.COLUMNS[table], dbz.Column("region", "string", nullable=True)]
    decoder, _, topic, schema, pg = _setup(table, columns, schema_id=8)
    typed, wire = sample_rows(table, 3)
    wire["region"] = "emea"
    change = _decode(decoder, topic, dbz.framed(8, schema, envelope("c", None, wire, pg=pg)))
    assert change.after == ROW_TYPES[table](**typed)


def test_old_and_new_schema_versions_decode_side_by_side() -> None:
    decoder, source, topic, schema, pg = _setup("accounts")
    new_schema = dbz.envelope_schema(
        topic, [*dbz.COLUMNS["accounts"], dbz.Column("segment", nullable=True)], pg=pg
    )
    source.add(9, new_schema)
    _, wire = sample_rows("accounts", 1)
    old = dbz.framed(7, schema, envelope("c", None, wire, pg=pg))
    new = dbz.framed(9, new_schema, envelope("c", None, wire | {"segment": "smb"}, pg=pg))
    assert _decode(decoder, topic, old).after == _decode(decoder, topic, new).after
    for _ in range(3):
        _decode(decoder, topic, old)
        _decode(decoder, topic, new)
    assert source.fetches == 2  # one lookup per schema id, then cached


# --- sources and topics ---------------------------------------------------------------------


def test_a_third_source_prefix_is_its_own_position_source() -> None:
    table = "timesheets"
    topic = "psa_eu.public.timesheets"
    schema = dbz.envelope_schema(topic, dbz.COLUMNS[table], pg=True)
    decoder = ChangeDecoder(DictSchemaSource({3: schema}))
    _, wire = sample_rows(table, 1)
    change = decoder.decode(
        topic, 0, 0, None, dbz.framed(3, schema, envelope("r", None, wire, pg=True))
    )
    assert change.position.source == "psa_eu" and change.table == "timesheets"


def test_snapshot_position_without_tx_and_gtid() -> None:
    decoder, _, topic, schema, pg = _setup("contracts")
    _, wire = sample_rows("contracts", 1)
    env = envelope("r", None, wire, pg=pg, gtid=None, row=0, snapshot="true")
    change = _decode(decoder, topic, dbz.framed(7, schema, env))
    assert change.op is Op.READ and change.position.gtid is None and change.position.row == 0


@pytest.mark.parametrize(
    ("topic", "kind"),
    [("psa.public.debezium_signal", "UnknownTable"), ("timesheets", "UnknownTopic")],
)
def test_topics_that_are_not_contract_tables(topic: str, kind: str) -> None:
    decoder, _, _, schema, pg = _setup("timesheets")
    _, wire = sample_rows("timesheets", 1)
    with pytest.raises(RecordError) as info:
        _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    assert info.value.context.extra["kind"] == kind


# --- poison input ---------------------------------------------------------------------------


def _assert_record_error(info: pytest.ExceptionInfo[RecordError], kind: str, value: bytes) -> None:
    ctx = info.value.context
    assert ctx.extra["kind"] == kind
    assert (ctx.topic, ctx.partition, ctx.offset) == ("psa.public.timesheets", 0, 5)
    assert ctx.value == value and ctx.key == b"\x00\x00\x00\x00\x07key"


@pytest.mark.parametrize("value", [b"\x01\x00\x00\x00\x07abc", b'{"json": true}', b"\x00\x00", b""])
def test_bad_magic_or_short_header(value: bytes) -> None:
    decoder, _, topic, _, _ = _setup("timesheets")
    with pytest.raises(RecordError, match="BadFraming") as info:
        _decode(decoder, topic, value)
    _assert_record_error(info, "BadFraming", value)


def test_unknown_schema_id_then_registered_later() -> None:
    decoder, source, topic, schema, pg = _setup("timesheets")
    _, wire = sample_rows("timesheets", 1)
    value = dbz.framed(42, schema, envelope("c", None, wire, pg=pg))
    with pytest.raises(RecordError, match=r"UnknownSchemaId.*42") as info:
        _decode(decoder, topic, value)
    _assert_record_error(info, "UnknownSchemaId", value)
    source.add(42, schema)  # a replay after the schema appeared decodes
    assert isinstance(_decode(decoder, topic, value), Change)


@pytest.mark.parametrize("cut", [1, 10, 30])
def test_truncated_payload(cut: int) -> None:
    decoder, _, topic, schema, pg = _setup("timesheets")
    _, wire = sample_rows("timesheets", 1)
    value = dbz.framed(7, schema, envelope("c", None, wire, pg=pg))[:-cut]
    with pytest.raises(RecordError) as info:
        _decode(decoder, topic, value)
    assert info.value.context.extra["kind"] in ("UndecodableRecord", "SchemaMismatch")
    assert info.value.context.value == value


def test_trailing_bytes_mean_another_schema() -> None:
    decoder, _, topic, schema, pg = _setup("timesheets")
    _, wire = sample_rows("timesheets", 1)
    value = dbz.framed(7, schema, envelope("c", None, wire, pg=pg)) + b"\x00\x01"
    with pytest.raises(RecordError, match=r"SchemaMismatch.*bytes left"):
        _decode(decoder, topic, value)


def test_record_of_another_table_schema_is_a_mismatch() -> None:
    decoder, source, topic, _, _ = _setup("timesheets")
    other = dbz.envelope_schema("crm.crm.accounts", dbz.COLUMNS["accounts"], pg=False)
    source.add(11, other)
    _, wire = sample_rows("accounts", 1)
    value = dbz.framed(11, other, envelope("c", None, wire, pg=False))
    with pytest.raises(RecordError, match=r"SchemaMismatch.*no primary key column timesheet_id"):
        _decode(decoder, topic, value)


def test_schema_that_is_no_envelope() -> None:
    decoder, source, topic, _, _ = _setup("timesheets")
    source.add(12, {"type": "record", "name": "X", "fields": [{"name": "a", "type": "long"}]})
    with pytest.raises(RecordError, match="not a Debezium envelope"):
        _decode(decoder, topic, b"\x00\x00\x00\x00\x0c\x02")


def test_null_primary_key_and_delete_without_before() -> None:
    columns = [
        c if c.name != "employee_id" else dbz.Column("employee_id", nullable=True)
        for c in dbz.COLUMNS["employees"]
    ]
    decoder, _, topic, schema, pg = _setup("employees", columns)
    _, wire = sample_rows("employees", 1)
    wire["employee_id"] = None
    with pytest.raises(RecordError, match="MissingPrimaryKey"):
        _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
    with pytest.raises(RecordError, match=r"MissingPrimaryKey.*delete without a before"):
        _decode(decoder, topic, dbz.framed(7, schema, envelope("d", None, None, pg=pg)))
    with pytest.raises(RecordError, match="MissingAfter"):
        _decode(decoder, topic, dbz.framed(7, schema, envelope("u", None, None, pg=pg)))


def test_unknown_operation_is_refused() -> None:
    decoder, _, topic, schema, pg = _setup("timesheets")
    _, wire = sample_rows("timesheets", 1)
    with pytest.raises(RecordError, match="UnknownOperation"):
        _decode(decoder, topic, dbz.framed(7, schema, envelope("t", None, wire, pg=pg)))


def test_wrong_type_in_a_contract_column_is_a_mismatch() -> None:
    columns = [
        c if c.name != "work_date" else dbz.Column("work_date", "boolean")
        for c in dbz.COLUMNS["timesheets"]
    ]
    decoder, _, topic, schema, pg = _setup("timesheets", columns)
    _, wire = sample_rows("timesheets", 1)
    wire["work_date"] = True
    with pytest.raises(RecordError, match="column work_date: a boolean value cannot become date"):
        _decode(decoder, topic, dbz.framed(7, schema, envelope("c", None, wire, pg=pg)))
