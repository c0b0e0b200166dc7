"""Turn an outbox JSON payload back into the typed values its Avro schema expects.

The outbox stores records as JSON (Decimal and datetime as exact text). Before Avro
encoding, values of logical types are restored: decimal → ``Decimal``, date → ``date``,
timestamp-millis/micros → aware ``datetime``. Driven by the schema, so a schema change needs
no code change here.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any


def _branch(avro: Any) -> Any:
    if isinstance(avro, list):
        rest = [b for b in avro if b != "null"]
        return rest[0] if len(rest) == 1 else None
    return avro


def revive_value(avro: Any, value: Any) -> Any:
    if value is None:
        return None
    avro = _branch(avro)
    if avro == "bytes" and isinstance(value, str):
        return bytes.fromhex(value)  # the outbox keeps raw bytes as hex text
    if not isinstance(avro, dict):
        return value
    logical = avro.get("logicalType")
    if logical == "decimal":
        return Decimal(str(value))
    if logical == "date":
        return date.fromisoformat(value) if isinstance(value, str) else value
    if logical in ("timestamp-millis", "timestamp-micros"):
        return datetime.fromisoformat(value) if isinstance(value, str) else value
    if avro.get("type") == "bytes" and isinstance(value, str):
        return bytes.fromhex(value)
    return value


def revive(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """``record`` with each field converted per ``schema`` (a record schema as JSON)."""
    return {f["name"]: revive_value(f["type"], record.get(f["name"])) for f in schema["fields"]}
