"""The typed CDC edge: a Kafka record of a Debezium topic in, a ``Change``, ``Tombstone`` or
``TxMarker`` out.

This is the only place that reads Debezium envelopes. Everything after it sees typed rows of
:mod:`billsync.model`. Any record that cannot be read raises
:class:`~billsync.errors.RecordError` with the record's context (topic, partition, offset, key
and value bytes) and a ``kind`` in ``context.extra`` — see :mod:`dataflows.cdc.deadletter`.

Table topics are ``<prefix>.<schema-or-database>.<table>``: the prefix names the source
(``psa``, ``crm`` or another registered connector), the table picks the row type from
``billsync.model.ROW_TYPES``. ``<prefix>.transaction`` is the source's transaction topic: its
BEGIN/END records become :class:`~billsync.change.TxMarker`
(:mod:`dataflows.cdc.transaction`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from io import BytesIO
from typing import Any, cast

from fastavro import schemaless_reader

from billsync.change import Change, Op, Tombstone, TxMarker, TxRef
from billsync.errors import RecordContext, RecordError
from billsync.model import ROW_TYPES, Row
from dataflows.cdc.convert import EPOCH, SchemaMismatch
from dataflows.cdc.envelope import MissingPrimaryKey, Plan, compile_plan
from dataflows.cdc.schemas import SchemaNotFound, SchemaSource
from dataflows.cdc.transaction import (
    MarkerInvalid,
    MarkerPlan,
    build_marker,
    compile_marker_plan,
    transaction_id,
    transaction_prefix,
)
from dataflows.cdc.wire import HEADER_SIZE, WireFormatError, schema_id_of

OPS: dict[str, Op] = {op.value: op for op in Op}


class DecodeFailure(Exception):
    """Internal: why a record failed, before it is wrapped into a RecordError."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def _split_topic(topic: str) -> tuple[str, str | None]:
    """(source prefix, table) of a Debezium table topic; (source prefix, None) of a
    transaction topic ``<prefix>.transaction`` (no contract table is named ``transaction``)."""
    prefix = transaction_prefix(topic)
    if prefix is not None:
        return prefix, None
    parts = topic.split(".")
    if len(parts) < 3 or not all(parts):
        raise DecodeFailure(
            "UnknownTopic",
            f"topic {topic!r} is not <prefix>.<schema-or-db>.<table> or <prefix>.transaction",
        )
    return ".".join(parts[:-2]), parts[-1]


class ChangeDecoder:
    """Decodes Debezium Avro records into typed changes; caches schemas and plans by id."""

    def __init__(self, schemas: SchemaSource) -> None:
        self._schemas = schemas
        self._raw: dict[int, Any] = {}
        self._plans: dict[tuple[int, str], Plan | DecodeFailure] = {}
        self._marker_plans: dict[int, MarkerPlan | DecodeFailure] = {}
        # topic -> (source, row type), or (source, None) for a transaction topic
        self._topics: dict[str, tuple[str, type[Row] | None] | DecodeFailure] = {}
        # fast path: (topic, 5-byte header) -> (source, row type, plan), successes only
        self._resolved: dict[tuple[str, bytes], tuple[str, type[Row], Plan]] = {}

    # --- caches ------------------------------------------------------------------------------

    def _topic(self, topic: str) -> tuple[str, type[Row] | None]:
        known = self._topics.get(topic)
        if known is None:
            try:
                source, table = _split_topic(topic)
                row_type = None if table is None else ROW_TYPES.get(table)
                if table is not None and row_type is None:
                    raise DecodeFailure(
                        "UnknownTable",
                        f"table {table!r} of topic {topic!r} is not a contract table "
                        f"({', '.join(sorted(ROW_TYPES))})",
                    )
                known = (source, row_type)
            except DecodeFailure as failure:
                known = failure
            self._topics[topic] = known
        if isinstance(known, DecodeFailure):
            raise known
        return known

    def _plan(self, schema_id: int, row_type: type[Row]) -> Plan:
        key = (schema_id, row_type.TABLE)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._compile(schema_id, row_type)
            self._plans[key] = plan
        if isinstance(plan, DecodeFailure):
            raise plan
        return plan

    def _writer_schema(self, schema_id: int) -> Any:
        raw = self._raw.get(schema_id)
        if raw is None:
            try:
                raw = self._schemas.fetch(schema_id)
            except SchemaNotFound as exc:
                # not cached: the schema may be registered later (replay after a fix)
                raise DecodeFailure("UnknownSchemaId", str(exc)) from None
            self._raw[schema_id] = raw
        return raw

    def _compile(self, schema_id: int, row_type: type[Row]) -> Plan | DecodeFailure:
        raw = self._writer_schema(schema_id)
        try:
            return compile_plan(schema_id, raw, row_type)
        except SchemaMismatch as exc:
            return DecodeFailure("SchemaMismatch", f"schema {schema_id}: {exc}")
        except Exception as exc:  # fastavro's parse errors have no common base
            return DecodeFailure("SchemaMismatch", f"schema {schema_id} is unusable: {exc!r}")

    def _marker_plan(self, schema_id: int) -> MarkerPlan:
        plan = self._marker_plans.get(schema_id)
        if plan is None:
            raw = self._writer_schema(schema_id)
            try:
                plan = compile_marker_plan(schema_id, raw)
            except SchemaMismatch as exc:
                plan = DecodeFailure("SchemaMismatch", str(exc))
            except Exception as exc:  # fastavro's parse errors have no common base
                plan = DecodeFailure("SchemaMismatch", f"schema {schema_id} is unusable: {exc!r}")
            self._marker_plans[schema_id] = plan
        if isinstance(plan, DecodeFailure):
            raise plan
        return plan

    # --- decoding ----------------------------------------------------------------------------

    def decode(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
    ) -> Change | Tombstone | TxMarker:
        """The typed change (or transaction marker) of one Kafka record; :class:`RecordError`
        when it cannot be read."""
        if value is None:
            return Tombstone(topic=topic, partition=partition, offset=offset, key=key)
        try:
            return self._decode(topic, partition, offset, value)
        except DecodeFailure as failure:
            raise self._error(
                failure.kind, str(failure), topic, partition, offset, key, value
            ) from None
        except MarkerInvalid as exc:
            raise self._error(
                "BadTransactionMarker", str(exc), topic, partition, offset, key, value
            ) from exc
        except MissingPrimaryKey as exc:
            raise self._error(
                "MissingPrimaryKey", str(exc), topic, partition, offset, key, value
            ) from exc
        except WireFormatError as exc:
            raise self._error(
                "BadFraming", str(exc), topic, partition, offset, key, value
            ) from None
        except (EOFError, IndexError, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            # fastavro on truncated or foreign bytes; converters on impossible values
            raise self._error(
                "UndecodableRecord",
                f"{exc.__class__.__name__}: {exc}",
                topic,
                partition,
                offset,
                key,
                value,
            ) from exc

    def _decode(self, topic: str, partition: int, offset: int, value: bytes) -> Change | TxMarker:
        resolved = self._resolved.get((topic, value[:HEADER_SIZE]))
        if resolved is None:
            source, row_type = self._topic(topic)
            if row_type is None:
                return self._decode_marker(source, topic, partition, offset, value)
            plan = self._plan(schema_id_of(value), row_type)  # checks the magic byte
            resolved = (source, row_type, plan)
            self._resolved[(topic, value[:HEADER_SIZE])] = resolved
        return self._decode_change(*resolved, topic, partition, offset, value)

    def _decode_marker(
        self, source: str, topic: str, partition: int, offset: int, value: bytes
    ) -> TxMarker:
        plan = self._marker_plan(schema_id_of(value))  # checks the magic byte
        record = _read(value, plan.parsed, plan.schema_id)
        return build_marker(source, topic, partition, offset, record)

    def _decode_change(
        self,
        source: str,
        row_type: type[Row],
        plan: Plan,
        topic: str,
        partition: int,
        offset: int,
        value: bytes,
    ) -> Change:
        envelope = _read(value, plan.parsed, plan.schema_id)
        op = OPS.get(envelope["op"])
        if op is None:
            raise DecodeFailure("UnknownOperation", f"op {envelope['op']!r} is not c/u/d/r")
        raw_before = envelope["before"]
        raw_after = envelope["after"]
        build = plan.row.build
        before = None if raw_before is None else build(raw_before)
        after = None if raw_after is None else build(raw_after)
        if op is Op.DELETE:
            if before is None:
                raise DecodeFailure("MissingPrimaryKey", "delete without a before image")
            row_key = before.key
        else:
            if after is None:
                raise DecodeFailure("MissingAfter", f"op {op.value} without an after image")
            row_key = after.key
        src = envelope["source"]
        position = plan.position(source, src)
        ts = src.get("ts_ms")
        # absent from the writer schema or null (a snapshot read, no tx metadata): None
        block = envelope.get("transaction")
        tx = (
            None
            if block is None
            else TxRef(id=transaction_id(block["id"]), total_order=int(block["total_order"]))
        )
        return Change(
            table=row_type.TABLE,
            op=op,
            key=row_key,
            before=before,
            after=after,
            position=position,
            source_ts=None if ts is None else _from_ms(ts),
            topic=topic,
            partition=partition,
            offset=offset,
            tx=tx,
        )

    @staticmethod
    def _error(
        kind: str,
        message: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
    ) -> RecordError:
        context = RecordContext(
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            extra={"kind": kind},
        )
        return RecordError(f"{kind}: {message}", context)


def _read(value: bytes, parsed: Any, schema_id: int) -> dict[str, Any]:
    """The Avro record after the 5-byte header; every byte must belong to it."""
    stream = BytesIO(value)
    stream.seek(HEADER_SIZE)
    record = cast(dict[str, Any], schemaless_reader(stream, parsed, None))
    if stream.tell() != len(value):
        raise DecodeFailure(
            "SchemaMismatch",
            f"{len(value) - stream.tell()} bytes left after the record of schema "
            f"{schema_id}: the bytes were not written with this schema",
        )
    return record


def _from_ms(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)
