"""Every topic schema: parses, documents every field, and round-trips exactly (fastavro)."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import fastavro
import pytest

from schemas.registry import TOPICS, key_of, key_schema_str, load_schema, schema_str

NOW = datetime(2025, 7, 31, 23, 59, 59, 123456, tzinfo=UTC)

FULL: dict[str, dict[str, Any]] = {
    "billing.transactions": {
        "transaction_id": "8c0f5d8e-0b7e-5d4c-9d39-4b1b3c0b9a11",
        "source_type": "timesheet",
        "source_id": "1234567",
        "contract_id": "CON-00001",
        "project_id": "PRJ-00001",
        "erp_customer_id": "CUST-100001",
        "legal_entity": "BS-UK-LTD",
        "erp_item_code": "SVC-CONS",
        "revenue_account": "4000-100",
        "cost_center": "CC-101",
        "work_date": date(2025, 7, 31),
        "period": "2025-07",
        "posting_period": "2025-09",  # a correction of a closed July, posted into September
        "hours": Decimal("7.75"),
        "rate": Decimal("137.50"),
        "amount": Decimal("1065.63"),
        "tax_amount": Decimal("213.13"),
        "currency": "GBP",
        "entry_type": "charge",
        "source_position": "psa:lsn=24023128:tx=771",
        "created_at": NOW,
    },
    "billing.exceptions": {
        "source_type": "milestone",
        "source_id": "MS-000001",
        "contract_id": "CON-00002",
        "project_id": "PRJ-00002",
        "period": "2025-08",
        "event": "changed",
        "old_state": "held",
        "old_reason": "BILLING_CAP_EXCEEDED",
        "new_state": "partially_held",
        "new_reason": "BILLING_CAP_EXCEEDED",
        "reason": None,
        "billable_amount": Decimal("12500.00"),
        "billed_amount": Decimal("2500.00"),
        "held_amount": Decimal("10000.00"),
        "tax_amount": Decimal("475.00"),
        "currency": "EUR",
        "source_position": "crm:mysql-bin.000003:4711:row=2",
        "occurred_at": NOW,
    },
    "recon.snapshots": {
        "project_id": "PRJ-00001",
        "period": "2025-07",
        "approved_hours": Decimal("1234.50"),
        "billable_hours": Decimal("1100.25"),
        "non_billable_hours": Decimal("134.25"),
        "covered_hours": Decimal("40.00"),
        "billed_amount": Decimal("9999999999999999.99"),
        "tax_amount": Decimal("-0.01"),
        "held_amount": Decimal("0.00"),
        "held_count": 3,
        "exception_count": 1,
        "ledger_entries": 512,
        "as_of": NOW,
        "source_position": "psa:lsn=1:tx=1",
    },
    "billing.dlq": {
        "error": "unknown magic byte 0x7b",
        "error_type": "RecordError",
        "topic": "psa.public.timesheets",
        "partition": 2,
        "offset": 2**40,
        "key": b"\x00\x00\x00\x00\x01\x02",
        "value": b'{"not": "avro"}\x00\xff',
        "timestamp": datetime(2025, 7, 31, 12, 0, 0, 123000, tzinfo=UTC),
        "received_at": NOW,
    },
}


def _nulled(topic: str) -> dict[str, Any]:
    """FULL with every nullable field set to None."""
    record = dict(FULL[topic])
    for f in json.loads(schema_str(topic))["fields"]:
        if isinstance(f["type"], list) and "null" in f["type"]:
            record[f["name"]] = None
    return record


def _roundtrip(topic: str, record: dict[str, Any]) -> dict[str, Any]:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, load_schema(topic), record)
    buf.seek(0)
    out: dict[str, Any] = fastavro.schemaless_reader(buf, load_schema(topic), load_schema(topic))
    return out


def test_topics_have_schema_files() -> None:
    assert set(TOPICS) == {
        "billing.transactions",
        "billing.exceptions",
        "recon.snapshots",
        "billing.dlq",
    }


@pytest.mark.parametrize("topic", TOPICS)
def test_every_field_has_a_doc_and_a_namespace(topic: str) -> None:
    raw = json.loads(schema_str(topic))
    assert raw["namespace"] == "io.billsync.v1"
    assert raw["doc"]
    for f in raw["fields"]:
        assert f.get("doc"), f"{topic}.{f['name']} has no doc"


@pytest.mark.parametrize("topic", TOPICS)
def test_full_record_round_trips_exactly(topic: str) -> None:
    out = _roundtrip(topic, FULL[topic])
    assert out == FULL[topic]
    for name, value in out.items():
        if isinstance(value, Decimal):
            assert value == FULL[topic][name] and value.as_tuple().exponent == -2


@pytest.mark.parametrize("topic", TOPICS)
def test_nullable_fields_round_trip_as_none(topic: str) -> None:
    record = _nulled(topic)
    assert _roundtrip(topic, record) == record


def test_amounts_keep_two_places_and_refuse_a_third() -> None:
    record = dict(FULL["billing.transactions"], amount=Decimal("0.1"))
    assert _roundtrip("billing.transactions", record)["amount"] == Decimal("0.10")
    with pytest.raises(ValueError, match=r"[Ss]cale"):
        _roundtrip("billing.transactions", dict(record, amount=Decimal("0.105")))


def test_timestamps_are_utc_aware_and_dates_are_dates() -> None:
    out = _roundtrip("billing.transactions", FULL["billing.transactions"])
    assert out["created_at"].tzinfo is not None and out["created_at"] == NOW
    assert type(out["work_date"]) is date


def test_unknown_enum_symbol_is_refused() -> None:
    with pytest.raises(ValueError):
        _roundtrip("billing.transactions", dict(FULL["billing.transactions"], entry_type="void"))


def test_transactions_fields_are_exactly_the_erp_columns() -> None:
    names = [f["name"] for f in json.loads(schema_str("billing.transactions"))["fields"]]
    assert names == [
        "transaction_id", "source_type", "source_id", "contract_id", "project_id",
        "erp_customer_id", "legal_entity", "erp_item_code", "revenue_account", "cost_center",
        "work_date", "period", "posting_period", "hours", "rate", "amount", "tax_amount",
        "currency", "entry_type", "source_position", "created_at",
    ]  # fmt: skip


def test_keys() -> None:
    assert key_schema_str("recon.snapshots") == '"string"'
    assert key_schema_str("billing.dlq") is None
    assert key_of("recon.snapshots", FULL["recon.snapshots"]) == "PRJ-00001|2025-07"
    assert key_of("billing.transactions", FULL["billing.transactions"]) == "timesheet|1234567"
