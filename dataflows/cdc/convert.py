"""Per-column converters from Debezium's Avro encodings to the Python types of billsync.model.

A converter is chosen once per (writer schema, column) from the column's Avro schema — its
``connect.name`` (Debezium/Connect semantic type), ``logicalType`` and Avro type — and the
contract type of the column. Per record, only the chosen function runs (or nothing, when
fastavro already produced the right type).

Encodings handled (connectors use ``decimal.handling.mode=precise`` and
``time.precision.mode=adaptive_time_microseconds``; the others are accepted too):

| contract type | Debezium / Avro encoding | Python |
| --- | --- | --- |
| Decimal | bytes + logicalType decimal (Connect Decimal) | fastavro's Decimal, column scale |
| Decimal | io.debezium.data.VariableScaleDecimal {scale, value} | Decimal |
| Decimal | string (decimal.handling.mode=string) | Decimal |
| datetime | io.debezium.time.ZonedTimestamp (ISO-8601 string with offset) | aware datetime |
| datetime | io.debezium.time.Timestamp / MicroTimestamp / NanoTimestamp (epoch) | UTC |
| datetime | timestamp-millis / -micros logical types (Connect Timestamp) | UTC datetime |
| date | io.debezium.time.Date (days since epoch) or the date logical type | date |
| bool | boolean, or int (MariaDB tinyint(1)) | bool |
| int / str | int, long / string (also io.debezium.data.Enum) | int / str |

``double``/``float`` for a Decimal column is refused: money is never a float.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

Converter = Callable[[Any], Any]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_DATE = date(1970, 1, 1)


class SchemaMismatch(TypeError):
    """A column's writer schema cannot become its contract type."""


def non_null_branch(field_type: Any) -> Any:
    """The schema of a column without its ``"null"`` union branch."""
    if isinstance(field_type, list):
        branches = [b for b in field_type if b != "null"]
        if len(branches) != 1:
            raise SchemaMismatch(f"union {field_type!r} is not a nullable single type")
        return branches[0]
    return field_type


def describe(schema: Any) -> tuple[str, str | None, str | None]:
    """(avro type, connect.name, logicalType) of a column schema."""
    if isinstance(schema, dict):
        avro = schema.get("type")
        if isinstance(avro, dict | list):  # {"type": {"type": "long", ...}} nesting
            return describe(avro)
        return str(avro), schema.get("connect.name"), schema.get("logicalType")
    return str(schema), None, None


# --- conversions run per value --------------------------------------------------------------


def _zoned(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"ZonedTimestamp {value!r} carries no offset")
    return parsed


def _millis(value: int) -> datetime:
    return EPOCH + timedelta(milliseconds=value)


def _micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def _nanos(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value // 1000)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _days(value: int) -> date:
    return EPOCH_DATE + timedelta(days=value)


def _variable_scale(value: dict[str, Any]) -> Decimal:
    unscaled = int.from_bytes(value["value"], "big", signed=True)
    return Decimal(unscaled).scaleb(-int(value["scale"]))


def _to_bool(value: int) -> bool:
    if value not in (0, 1):
        raise ValueError(f"{value} is not a boolean (tinyint(1) holds 0 or 1)")
    return bool(value)


# --- choosing a converter per column ----------------------------------------------------------

_TIMESTAMP_INTS: dict[str, Converter] = {
    "io.debezium.time.Timestamp": _millis,
    "io.debezium.time.MicroTimestamp": _micros,
    "io.debezium.time.NanoTimestamp": _nanos,
    "org.apache.kafka.connect.data.Timestamp": _millis,
}
_TIME_NAMES = {
    *_TIMESTAMP_INTS,
    "io.debezium.time.ZonedTimestamp",
    "io.debezium.time.Date",
    "org.apache.kafka.connect.data.Date",
    "io.debezium.time.Time",
    "io.debezium.time.MicroTime",
    "io.debezium.time.NanoTime",
    "io.debezium.time.ZonedTime",
}


def converter_for(target: type, column_schema: Any) -> Converter | None:
    """The converter of one column, or None when fastavro's value is already right.

    Raises :class:`SchemaMismatch` when the writer's encoding cannot become ``target``.
    """
    schema = non_null_branch(column_schema)
    avro, connect, logical = describe(schema)
    chosen = _choose(target, avro, connect, logical)
    if chosen is _REFUSED:
        label = connect or logical or avro
        raise SchemaMismatch(f"a {label} value cannot become {target.__name__}")
    return chosen  # type: ignore[return-value]  # _REFUSED handled above; the rest are Converter | None


_REFUSED = object()


def _choose(target: type, avro: str, connect: str | None, logical: str | None) -> object:
    if target is Decimal:
        return _decimal(avro, connect, logical)
    if target is datetime:
        return _datetime(avro, connect, logical)
    if target is date:
        return _date(avro, connect, logical)
    if target is bool:
        if avro == "boolean":
            return None
        if avro in ("int", "long") and connect is None and logical is None:
            return _to_bool
        return _REFUSED
    if target is int:
        if avro in ("int", "long") and connect not in _TIME_NAMES and logical is None:
            return None
        return _REFUSED
    if target is str:
        if avro == "string" and connect not in _TIME_NAMES:
            return None
        if avro in ("int", "long") and connect is None and logical is None:
            return str
        return _REFUSED
    return _REFUSED


def _decimal(avro: str, connect: str | None, logical: str | None) -> object:
    if logical == "decimal" and avro in ("bytes", "fixed"):
        return None  # fastavro builds Decimal with the writer's scale
    if connect == "io.debezium.data.VariableScaleDecimal" and avro == "record":
        return _variable_scale
    if avro == "string" and connect is None:
        return Decimal
    if avro in ("int", "long") and connect is None and logical is None:
        return Decimal
    return _REFUSED  # double/float above all: money is never a float


def _datetime(avro: str, connect: str | None, logical: str | None) -> object:
    if connect == "io.debezium.time.ZonedTimestamp" and avro == "string":
        return _zoned
    if logical in ("timestamp-millis", "timestamp-micros"):
        return _aware  # fastavro gives UTC-aware datetimes; guard anyway
    if connect in _TIMESTAMP_INTS and avro in ("int", "long"):
        return _TIMESTAMP_INTS[connect]
    return _REFUSED


def _date(avro: str, connect: str | None, logical: str | None) -> object:
    if logical == "date":
        return None  # fastavro gives date
    if connect in ("io.debezium.time.Date", "org.apache.kafka.connect.data.Date") and avro == "int":
        return _days
    if avro == "string" and connect is None:
        return date.fromisoformat
    return _REFUSED
