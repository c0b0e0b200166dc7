"""Recorded Debezium events: a file format, a writer and a Bytewax source that replays it.

A capture is JSON lines. A ``schema`` line carries a writer schema by registry id, before the
first record that uses it; a ``record`` line carries one Kafka record exactly as read (topic,
partition, offset, base64 key and value bytes, timestamp). Replaying a capture runs the same
decode → billing → ERP path as production, with no Kafka and no registry: the schemas come
from the file. Poison records are recorded as they were, so they dead-letter again.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

import orjson
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from billsync.errors import ConfigError
from dataflows.cdc.schemas import DictSchemaSource
from dataflows.cdc.wire import HEADER_SIZE

FORMAT = "billsync-capture/1"
Msg = KafkaSourceMessage[bytes | None, bytes | None]


def _b64(data: bytes | None) -> str | None:
    return base64.b64encode(data).decode() if data is not None else None


def _unb64(text: str | None) -> bytes | None:
    return base64.b64decode(text) if text is not None else None


class CaptureWriter:
    """Appends records (and, once each, the schemas they use) to a capture file."""

    def __init__(self, out: IO[bytes], schemas: Any) -> None:
        self._out = out
        self._schemas = schemas  # anything with fetch(schema_id) -> parsed schema
        self._written: set[int] = set()
        self._out.write(orjson.dumps({"kind": "header", "format": FORMAT}) + b"\n")

    def record(self, msg: Msg) -> None:
        value = msg.value
        if value is not None and len(value) >= HEADER_SIZE and value[0] == 0:
            schema_id = int.from_bytes(value[1:HEADER_SIZE], "big")
            if schema_id not in self._written:
                try:
                    schema = self._schemas.fetch(schema_id)
                except LookupError:
                    schema = None  # unknown id: the replay dead-letters it, as production did
                if schema is not None:
                    line = {"kind": "schema", "id": schema_id, "schema": schema}
                    self._out.write(orjson.dumps(line) + b"\n")
                self._written.add(schema_id)
        self._out.write(
            orjson.dumps(
                {
                    "kind": "record",
                    "topic": msg.topic,
                    "partition": msg.partition,
                    "offset": msg.offset,
                    "key": _b64(msg.key),
                    "value": _b64(value),
                    "timestamp": msg.timestamp[1] if msg.timestamp else None,
                }
            )
            + b"\n"
        )


def read_capture(path: Path) -> tuple[DictSchemaSource, list[Msg]]:
    """The schemas and records of a capture file (refuses a file of another format)."""
    schemas = DictSchemaSource()
    records: list[Msg] = []
    with path.open("rb") as f:
        for n, line in enumerate(f, start=1):
            item = orjson.loads(line)
            kind = item.get("kind")
            if n == 1 and (kind != "header" or item.get("format") != FORMAT):
                raise ConfigError(
                    f"{path} is not a billsync capture",
                    field=str(path),
                    fix=f"record one with `billsync capture` ({FORMAT})",
                )
            if kind == "schema":
                schemas.add(int(item["id"]), item["schema"])
            elif kind == "record":
                records.append(
                    KafkaSourceMessage(
                        key=_unb64(item["key"]),
                        value=_unb64(item["value"]),
                        topic=item["topic"],
                        partition=item["partition"],
                        offset=item["offset"],
                    )
                )
    return schemas, records


class _Part(StatefulSourcePartition[Msg, int]):
    def __init__(self, records: list[Msg], start: int, batch: int, uneven: bool) -> None:
        self._records = records
        self._pos = start
        self._batch = batch
        # OS-seeded on purpose: every start reads other batches, as a Kafka consumer would
        self._sizes = random.Random() if uneven else None  # noqa: S311  # not security

    def next_batch(self) -> Iterable[Msg]:
        if self._pos >= len(self._records):
            raise StopIteration
        size = self._sizes.randint(1, self._batch) if self._sizes else self._batch
        chunk = self._records[self._pos : self._pos + size]
        self._pos += len(chunk)
        return chunk

    def snapshot(self) -> int:
        return self._pos


class CaptureSource(FixedPartitionedSource[Msg, int]):
    """Replays a capture's records in file order (one partition; resumable by position).

    Batches are ``batch`` records; with ``uneven``, each batch is of a random size from 1 to
    ``batch``, different at every start — as a Kafka consumer's fetches vary with timing —
    so that a replay shows whether what the flow posts depends on how its input was cut
    into batches (it must not: SPEC 4)."""

    def __init__(self, records: list[Msg], batch: int = 1000, *, uneven: bool = False) -> None:
        self._records = records
        self._batch = batch
        self._uneven = uneven

    def list_parts(self) -> list[str]:
        return ["capture"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Part:
        return _Part(self._records, resume_state or 0, self._batch, self._uneven)
