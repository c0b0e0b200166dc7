"""Can an outbox record be encoded for its topic? Answered offline, one record at a time.

A record that cannot be Avro-encoded for its topic — null or a wrong type where the schema
wants a value, a decimal with a third place, an unknown symbol or topic, a keyed topic
without a key, a payload that is not JSON — stays unencodable however often it is retried:
it is a property of the record, not of the broker or the registry. :func:`outbox_record`
and :func:`encoding_problem` find it with fastavro and the topic's schema from ``schemas/``
(the codec and the schema the producer's serializer uses too), without any I/O, so the
outbox sets that one record aside (:mod:`sinks.kafka.quarantine`) instead of retrying it,
and everything behind it, for ever.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cache
from typing import Any

import fastavro
import orjson
from fastavro.validation import ValidationError, validate

from billsync.errors import BillsyncError
from schemas.registry import KEYS, load_schema, schema_str
from sinks.kafka.revive import revive

# What encoding a bad record raises (fastavro, orjson, revive's Decimal/date/hex parsing,
# ConfigError for an unknown topic). Everything here is computation on the record alone.
_RECORD_FAULTS = (
    BillsyncError,
    ValidationError,
    ValueError,
    TypeError,
    ArithmeticError,
    KeyError,
    AttributeError,
)


@dataclass(frozen=True, slots=True)
class OutRecord:
    """One record for a billsync topic: its string key (None: unkeyed) and typed value."""

    topic: str
    key: str | None
    value: dict[str, Any]


class UnencodableRecord(BillsyncError):
    """One record cannot be encoded for its topic; retrying cannot help."""

    def __init__(self, topic: str, reason: str) -> None:
        self.topic = topic
        self.reason = reason
        super().__init__(f"a record for {topic} cannot be encoded: {reason}")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):  # its message is a JSON list of field problems
        return "; ".join(str(m) for m in exc.errors)
    return f"{type(exc).__name__}: {exc}"


@cache
def _value_schema(topic: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(schema_str(topic))
    return parsed


def outbox_record(topic: str, key: bytes | None, payload: str) -> OutRecord:
    """The :class:`OutRecord` of a stored outbox row (JSON payload revived per the schema).

    Raises :class:`UnencodableRecord` when the row cannot even be read back: an unknown
    topic, a payload that is not JSON, a key that is not UTF-8, a value that does not parse
    as its logical type."""
    try:
        value = revive(_value_schema(topic), orjson.loads(payload))
        text = key.decode("utf-8") if key is not None else None
    except _RECORD_FAULTS as exc:
        raise UnencodableRecord(topic, _describe(exc)) from exc
    return OutRecord(topic, text, value)


def key_problem(record: OutRecord) -> str | None:
    """Why ``record``'s key does not fit its topic (a keyed topic needs one), or None."""
    if record.topic in KEYS and record.key is None:
        return f"keyed topic (key {KEYS[record.topic]}) but the record has no key"
    return None


def encoding_problem(record: OutRecord) -> str | None:
    """Why ``record`` cannot be encoded for its topic, or None when it can."""
    problem = key_problem(record)
    if problem is not None:
        return problem
    try:
        schema = load_schema(record.topic)
        validate(record.value, schema, raise_errors=True)  # names the field at fault
        fastavro.schemaless_writer(io.BytesIO(), schema, record.value)  # scale, range
    except _RECORD_FAULTS as exc:
        return _describe(exc)
    return None


def row_problem(topic: str, key: bytes | None, payload: str) -> str | None:
    """Why an outbox row (as stored) cannot be published, or None when it can."""
    try:
        record = outbox_record(topic, key, payload)
    except UnencodableRecord as exc:
        return exc.reason
    return encoding_problem(record)
