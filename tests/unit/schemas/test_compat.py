"""Offline BACKWARD check (Avro schema resolution), cross-checked with fastavro decoding."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import fastavro
import pytest
from fastavro.read import SchemaResolutionError

from schemas.compat import backward_problems
from schemas.registry import TOPICS, schema_str
from tests.unit.schemas.test_roundtrip import FULL


def _schema(topic: str) -> dict[str, Any]:
    return dict(json.loads(schema_str(topic)))


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def _decodes(new: dict[str, Any], old: dict[str, Any], record: dict[str, Any]) -> bool:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), record)
    buf.seek(0)
    try:
        fastavro.schemaless_reader(buf, fastavro.parse_schema(old), fastavro.parse_schema(new))
    except SchemaResolutionError:
        return False
    return True


@pytest.mark.parametrize("topic", TOPICS)
def test_a_schema_is_backward_compatible_with_itself(topic: str) -> None:
    assert backward_problems(_schema(topic), _schema(topic)) == []


def test_adding_an_optional_field_is_compatible() -> None:
    old = _schema("billing.transactions")
    new = copy.deepcopy(old)
    new["fields"].append({"name": "memo", "type": ["null", "string"], "default": None, "doc": "x"})
    assert backward_problems(new, old) == []
    assert _decodes(new, old, FULL["billing.transactions"])


def test_removing_a_field_is_backward_compatible_by_avro_rules() -> None:
    # the new reader simply ignores it; it is FORWARD (old readers) that this would break
    old = _schema("billing.transactions")
    new = copy.deepcopy(old)
    new["fields"] = [f for f in new["fields"] if f["name"] != "cost_center"]
    assert backward_problems(new, old) == []


def test_adding_a_field_without_default_is_refused() -> None:
    old = _schema("recon.snapshots")
    new = copy.deepcopy(old)
    new["fields"].append({"name": "region", "type": "string", "doc": "x"})
    problems = backward_problems(new, old)
    assert problems and "region" in problems[0] and "default" in problems[0]
    assert not _decodes(new, old, FULL["recon.snapshots"])


def test_changing_a_type_is_refused() -> None:
    old = _schema("billing.dlq")
    new = copy.deepcopy(old)
    _field(new, "offset")["type"] = "string"
    assert any("offset" in p and "long" in p for p in backward_problems(new, old))


def test_promotion_int_to_long_is_compatible() -> None:
    old = _schema("recon.snapshots")
    new = copy.deepcopy(old)
    _field(new, "held_count")["type"] = "long"
    assert backward_problems(new, old) == []
    assert backward_problems(old, new) != []  # but not the other way round


def test_changing_decimal_scale_or_precision_is_refused() -> None:
    old = _schema("billing.transactions")
    new = copy.deepcopy(old)
    _field(new, "amount")["type"]["scale"] = 4
    assert any("amount" in p for p in backward_problems(new, old))


def test_making_a_nullable_field_required_is_refused() -> None:
    old = _schema("billing.transactions")
    new = copy.deepcopy(old)
    field = _field(new, "currency")
    field["type"] = "string"
    del field["default"]
    assert any("currency" in p for p in backward_problems(new, old))


def test_removing_an_enum_symbol_is_refused_adding_one_is_not() -> None:
    old = _schema("billing.transactions")
    fewer = copy.deepcopy(old)
    _field(fewer, "entry_type")["type"]["symbols"] = ["charge", "reversal"]
    assert any("adjustment" in p for p in backward_problems(fewer, old))
    more = copy.deepcopy(old)
    _field(more, "entry_type")["type"]["symbols"].append("write_off")
    assert backward_problems(more, old) == []
