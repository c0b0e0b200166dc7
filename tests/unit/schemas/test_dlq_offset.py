"""``billing.dlq`` offset is nullable (a consumer error may name no offset), compatibly."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import fastavro

from schemas.compat import backward_problems
from schemas.registry import load_schema, schema_str
from tests.unit.schemas.test_roundtrip import FULL


def test_a_dead_letter_with_offset_none_round_trips() -> None:
    letter = dict(FULL["billing.dlq"], offset=None)
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, load_schema("billing.dlq"), letter)
    buf.seek(0)
    schema = load_schema("billing.dlq")
    assert fastavro.schemaless_reader(buf, schema, schema) == letter


def test_nullable_offset_is_backward_compatible_with_the_long_offset() -> None:
    new: dict[str, Any] = json.loads(schema_str("billing.dlq"))
    old = copy.deepcopy(new)  # the first version: offset a plain long
    next(f for f in old["fields"] if f["name"] == "offset").update(type="long")
    next(f for f in old["fields"] if f["name"] == "offset").pop("default")
    assert backward_problems(new, old) == []
    buf = io.BytesIO()  # data written with the old schema reads with the new one
    fastavro.schemaless_writer(buf, fastavro.parse_schema(old), FULL["billing.dlq"])
    buf.seek(0)
    read = fastavro.schemaless_reader(buf, fastavro.parse_schema(old), fastavro.parse_schema(new))
    assert read == FULL["billing.dlq"]
