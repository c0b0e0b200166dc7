"""Compile a Debezium envelope writer schema into a decoding plan, once per (schema id, table).

A plan holds the fastavro-parsed writer schema and, for the table's row type, one converter
per contract column in field order, plus the builder of the source position. Decoding a record
then only runs fastavro and the prepared functions.
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastavro import parse_schema

from billsync.change import SourcePosition
from billsync.model import Row
from dataflows.cdc.convert import Converter, SchemaMismatch, converter_for, non_null_branch

# fastavro needs a precision for Avro decimals; Connect writes it as a parameter, and a schema
# that has neither is still decodable with a precision wide enough for any column.
_DEFAULT_DECIMAL_PRECISION = 64
_ENVELOPE_FIELDS = ("before", "after", "source", "op")


class MissingPrimaryKey(ValueError):
    """A row image without its primary key value."""


@dataclass(frozen=True, slots=True)
class RowPlan:
    """How to build one row type from the row records of one writer schema."""

    row_type: type[Row]
    pk: str
    columns: tuple[tuple[str, Converter | None], ...]  # contract field order
    build: Callable[[dict[str, Any]], Row]  # compiled once per plan by _compile_builder


def _compile_builder(
    row_type: type[Row], columns: tuple[tuple[str, Converter | None], ...], present: set[str]
) -> Callable[[dict[str, Any]], Row]:
    """A function ``record -> row`` specialised for one writer schema.

    Generated code avoids a loop, a dict ``get`` and a converter test per column per record:
    columns absent from the writer become a literal None, columns fastavro already types are
    passed through. Only the row type's own field names enter the code (never writer input).
    """
    namespace: dict[str, Any] = {"T": row_type, "MissingPrimaryKey": MissingPrimaryKey}
    lines = ["def build(r):"]
    args: list[str] = []
    for i, (name, conv) in enumerate(columns):
        if name not in present:
            args.append("None")
            continue
        lines.append(f"    v{i} = r[{name!r}]")
        if conv is not None:
            namespace[f"c{i}"] = conv
            lines.append(f"    if v{i} is not None: v{i} = c{i}(v{i})")
        args.append(f"v{i}")
    pk = columns[0][0]
    lines.insert(2, f"    if v0 is None: raise MissingPrimaryKey('primary key {pk} is null')")
    lines.append(f"    return T({', '.join(args)})")
    exec("\n".join(lines), namespace)  # noqa: S102  # code built from dataclass field names only
    builder: Callable[[dict[str, Any]], Row] = namespace["build"]
    return builder


PositionBuilder = Callable[[str, dict[str, Any]], SourcePosition]


@dataclass(frozen=True, slots=True)
class Plan:
    schema_id: int
    parsed: Any  # fastavro parsed schema
    row: RowPlan
    position: PositionBuilder


def _normalise(schema: Any) -> Any:
    """A copy of ``schema`` in which every Avro decimal has a ``precision``."""

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("logicalType") == "decimal" and "precision" not in node:
                params = node.get("connect.parameters") or {}
                node["precision"] = int(
                    params.get("connect.decimal.precision", _DEFAULT_DECIMAL_PRECISION)
                )
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    copied = copy.deepcopy(schema)
    walk(copied)
    return copied


def _named_records(schema: Any) -> dict[str, dict[str, Any]]:
    """Every named record of ``schema`` by full name and by short name."""
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any, namespace: str | None) -> None:
        if isinstance(node, dict):
            ns = node.get("namespace", namespace)
            if node.get("type") == "record" and "name" in node:
                name = str(node["name"])
                full = name if "." in name or not ns else f"{ns}.{name}"
                found[full] = node
                found.setdefault(name.rsplit(".", 1)[-1], node)
                ns = full.rpartition(".")[0] or None
            for value in node.values():
                walk(value, ns)
        elif isinstance(node, list):
            for value in node:
                walk(value, namespace)

    walk(schema, None)
    return found


def _record_of(field_type: Any, named: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if field_type == "null" or field_type is None:
        return None
    branch = non_null_branch(field_type)
    if isinstance(branch, str):
        return named.get(branch) or named.get(branch.rsplit(".", 1)[-1])
    if isinstance(branch, dict) and branch.get("type") == "record":
        return branch
    return None


def _contract_fields(row_type: type[Row]) -> list[tuple[str, type]]:
    hints = typing.get_type_hints(row_type)
    out: list[tuple[str, type]] = []
    for f in dataclasses.fields(row_type):
        hint = hints[f.name]
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        out.append((f.name, args[0] if args else hint))
    return out


def _row_plan(row_type: type[Row], record: dict[str, Any]) -> RowPlan:
    writer = {f["name"]: f["type"] for f in record.get("fields", [])}
    columns: list[tuple[str, Converter | None]] = []
    fields = _contract_fields(row_type)
    pk = fields[0][0]
    if pk not in writer:
        raise SchemaMismatch(f"row schema {record.get('name')} has no primary key column {pk}")
    for name, target in fields:
        if name not in writer:
            columns.append((name, None))  # absent from this schema version: None
            continue
        try:
            columns.append((name, converter_for(target, writer[name])))
        except SchemaMismatch as exc:
            raise SchemaMismatch(f"column {name}: {exc}") from None
    frozen = tuple(columns)
    return RowPlan(
        row_type=row_type,
        pk=pk,
        columns=frozen,
        build=_compile_builder(row_type, frozen, set(writer)),
    )


def last_commit_lsn(sequence: str | None) -> int | None:
    """The first entry of a PostgreSQL ``source.sequence``, a JSON array of two strings
    ``["<last commit LSN>", "<LSN>"]`` (either may be null).

    Debezium's ``SourceInfo.sequence()`` writes ``lastCommitLsn`` and ``lsn``; the streaming
    source sets ``lastCommitLsn`` at every COMMIT it reads (``commitMessage`` ->
    ``updateCommitPosition``), so every change of a transaction carries the commit LSN of the
    transaction decoded before it. pgoutput decodes transactions in commit order, so
    (last commit LSN, LSN) orders changes by commit (``SourcePosition.commit_order``).
    Snapshot reads carry ``[null, "<LSN>"]``. Anything else is an undecodable record
    (``ValueError``).
    """
    if sequence is None:
        return None
    entries = orjson.loads(sequence)
    if not isinstance(entries, list) or len(entries) != 2:
        raise ValueError(f"source.sequence {sequence!r} is not [last commit LSN, LSN]")
    first = entries[0]
    if first is None:
        return None
    if not isinstance(first, str):  # Debezium writes LSNs as decimal strings
        raise ValueError(f"source.sequence {sequence!r}: last commit LSN is not a string")
    return int(first)


def _pg_position(source: str, s: dict[str, Any]) -> SourcePosition:
    return SourcePosition(
        source=source,
        lsn=s.get("lsn"),
        commit_lsn=last_commit_lsn(s.get("sequence")),
        tx_id=s.get("txId"),
        ts_ms=s.get("ts_ms"),
    )


def _binlog_position(source: str, s: dict[str, Any]) -> SourcePosition:
    return SourcePosition(
        source=source,
        file=s.get("file"),
        pos=s.get("pos"),
        row=s.get("row") or 0,
        gtid=s.get("gtid"),
        ts_ms=s.get("ts_ms"),
    )


def _position_builder(source_record: dict[str, Any]) -> PositionBuilder:
    names = {f["name"] for f in source_record.get("fields", [])}
    if "lsn" in names:
        return _pg_position
    if {"file", "pos"} <= names:
        return _binlog_position
    raise SchemaMismatch(
        f"source block {source_record.get('name')} has neither lsn (PostgreSQL) nor "
        "file/pos (binlog)"
    )


def compile_plan(schema_id: int, schema: Any, row_type: type[Row]) -> Plan:
    """Check that ``schema`` is a Debezium envelope for ``row_type`` and prepare its decoding."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaMismatch(f"schema {schema_id} is not an Avro record (not a Debezium envelope)")
    fields = {f["name"]: f["type"] for f in schema.get("fields", [])}
    missing = [f for f in _ENVELOPE_FIELDS if f not in fields]
    if missing:
        raise SchemaMismatch(
            f"schema {schema_id} ({schema.get('name')}) is not a Debezium envelope: "
            f"no {', '.join(missing)}"
        )
    named = _named_records(schema)
    row_record = _record_of(fields["after"], named) or _record_of(fields["before"], named)
    source_record = _record_of(fields["source"], named)
    if row_record is None or source_record is None:
        raise SchemaMismatch(f"schema {schema_id}: before/after or source is not a record")
    normalised = _normalise(schema)
    parsed = parse_schema(normalised, named_schemas={})
    return Plan(
        schema_id=schema_id,
        parsed=parsed,
        row=_row_plan(row_type, row_record),
        position=_position_builder(source_record),
    )
