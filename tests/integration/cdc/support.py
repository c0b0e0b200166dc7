"""Shared machinery of the CDC scenario catalogue (see README.md).

A scenario runs against the real stack through a :class:`Throwaway`: a copy of the shipped
``psa`` or ``crm`` connector template with a unique name (= topic prefix), narrowed to one
contract table, whose rows all carry keys that start with that name. ``Throwaway.close``
deletes the rows, the connector, its replication slot and its topics.

:data:`PSA` and :data:`CRM` describe the one table each scenario uses per source (PSA
``milestones`` on PostgreSQL, CRM ``contract_rates`` on MariaDB) in the same terms, so a
scenario is written once and parametrized over both.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer
from sqlalchemy import Engine, text

from billsync.change import Change, Op, Tombstone, TxMarker
from billsync.model import Row
from billsync.settings import Settings
from connectors.connect_client import ConnectClient
from connectors.registration import register, wait_running
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.cdc.schemas import RegistrySchemaSource
from dataflows.cdc.wire import schema_id_of
from tests.integration.connector_copies import cleanup, write_copy

CONSUME_TIMEOUT_S = 60.0
REGISTER_TIMEOUT_S = 120.0

Event = Change | Tombstone | TxMarker


@dataclass(frozen=True)
class Source:
    """One source table in the terms every scenario uses.

    ``text_col`` is a free-text contract column, ``decimal_col`` a NUMERIC(p, 2) money column,
    ``nullable_col`` a nullable contract column (a date or timestamp) and ``other_col`` a
    NOT NULL contract column that is neither key nor one of those.
    """

    id: str  # "psa" | "crm": the shipped template and the engine fixture ("<id>_engine")
    table: str
    namespace: str  # PostgreSQL schema or MariaDB database: the middle part of the topic
    key_col: str
    text_col: str
    decimal_col: str
    decimal_max: Decimal
    nullable_col: str
    nullable_value: Any
    other_col: str
    extra_col_type: str  # DDL type of a nullable column added while the connector runs
    insert_sql: str  # parameters :k (key), :t (text), :d (decimal)

    def topic(self, prefix: str) -> str:
        return f"{prefix}.{self.namespace}.{self.table}"

    def qualified(self, column: str) -> str:
        """The column as Debezium's column.include/exclude lists name it."""
        return f"{self.namespace}.{self.table}.{column}"


PSA = Source(
    id="psa",
    table="milestones",
    namespace="public",
    key_col="milestone_id",
    text_col="name",
    decimal_col="amount",
    decimal_max=Decimal("999999999999.99"),  # NUMERIC(14, 2)
    nullable_col="accepted_at",
    nullable_value=datetime(2025, 3, 31, 22, 30, 15, 123456, tzinfo=UTC),
    other_col="due_date",
    extra_col_type="TEXT NULL",
    insert_sql=(
        "INSERT INTO milestones (milestone_id, project_id, name, amount, due_date, status) "
        "VALUES (:k, 'PRJ-CDC', :t, :d, '2025-04-30', 'planned')"
    ),
)

CRM = Source(
    id="crm",
    table="contract_rates",
    namespace="crm",
    key_col="rate_id",
    text_col="labor_category",
    decimal_col="hourly_rate",
    decimal_max=Decimal("99999999.99"),  # NUMERIC(10, 2)
    nullable_col="effective_to",
    nullable_value=date(2025, 12, 31),
    other_col="effective_from",
    extra_col_type="VARCHAR(64) NULL",
    insert_sql=(
        "INSERT INTO contract_rates (rate_id, contract_id, labor_category, hourly_rate, "
        "effective_from, effective_to) VALUES (:k, 'CON-CDC', :t, :d, '2025-01-01', NULL)"
    ),
)

SOURCES = (PSA, CRM)


@dataclass
class Throwaway:
    """A throwaway connector on one source table, its own rows, and a consumer of its topic."""

    source: Source
    name: str
    settings: Settings
    connect: ConnectClient
    decoder: ChangeDecoder
    engine: Engine
    directory: Path
    kafka_admin: Any
    pg_superuser: Callable[[str], Any] | None
    # raw (key, value) bytes of every record consumed of ``topic``, by (partition, offset)
    raw: dict[tuple[int, int], tuple[bytes | None, bytes | None]] = field(default_factory=dict)
    # ... and of every topic consumed, by (topic, partition, offset)
    raw_all: dict[tuple[str, int, int], tuple[bytes | None, bytes | None]] = field(
        default_factory=dict
    )
    _sequence: int = 0

    # --- rows --------------------------------------------------------------------------------

    def key(self, label: str = "") -> str:
        """A fresh key of this scenario's own (deleted by ``close``)."""
        self._sequence += 1
        return f"{self.name}-{self._sequence:03d}{label}"

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """One statement in its own transaction (one source transaction per call)."""
        with self.engine.begin() as conn:
            conn.execute(text(sql), dict(params or {}))

    def insert(self, key: str, *, text_value: str = "cdc", amount: str = "10.00") -> None:
        self.execute(self.source.insert_sql, {"k": key, "t": text_value, "d": Decimal(amount)})

    def update(self, key: str, **columns: Any) -> None:
        sets = ", ".join(f"{c} = :{c}" for c in columns)
        params = {**columns, "_k": key}
        # table and column names come from this module and the caller's keywords only
        sql = f"UPDATE {self.source.table} SET {sets} WHERE {self.source.key_col} = :_k"
        self.execute(sql, params)

    def delete(self, key: str) -> None:
        self.execute(
            f"DELETE FROM {self.source.table} WHERE {self.source.key_col} = :k", {"k": key}
        )

    # --- connector ---------------------------------------------------------------------------

    @property
    def topic(self) -> str:
        return self.source.topic(self.name)

    def register(
        self, changes: dict[str, str | None] | None = None, *, tables: list[str] | None = None
    ) -> None:
        """Register the throwaway copy (validates, waits until its task runs); ``tables``
        widens it from the scenario's table to those tables of the source."""
        write_copy(
            self.directory,
            self.source.id,
            self.name,
            tables=tables or [self.source.table],
            changes=changes,
        )
        register(
            self.name,
            self.settings,
            self.connect,
            directory=self.directory,
            timeout_s=REGISTER_TIMEOUT_S,
        )

    def restart(self) -> None:
        """Connect REST ``/restart?includeTasks=true``, then wait until the task runs again."""
        self.connect.restart(self.name)
        wait_running(self.connect, self.name, timeout_s=REGISTER_TIMEOUT_S)

    def close(self) -> None:
        mine = f"DELETE FROM {self.source.table} WHERE {self.source.key_col} LIKE :p"
        self.execute(mine, {"p": f"{self.name}-%"})
        cleanup(
            self.connect,
            self.name,
            kafka_admin=self.kafka_admin,
            pg_superuser=self.pg_superuser,
        )

    # --- events ------------------------------------------------------------------------------

    def consume_until(
        self,
        done: Callable[[list[Event]], bool],
        *,
        timeout_s: float = CONSUME_TIMEOUT_S,
        topics: list[str] | None = None,
    ) -> list[Event]:
        """Every event of the topic (or of ``topics``) from the beginning, decoded, until
        ``done(events)``."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.kafka_bootstrap,
                "group.id": f"it_cdc_{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "topic.metadata.refresh.interval.ms": 1000,
            }
        )
        consumer.subscribe(topics or [self.topic])
        seen: list[Event] = []
        read: set[tuple[str, int, int]] = set()
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and not done(seen):
                msg = consumer.poll(0.5)
                if msg is None or msg.error():
                    continue
                topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
                assert topic is not None and partition is not None and offset is not None
                if (topic, partition, offset) in read:
                    # a topic created after the subscription rebalances the consumer, which
                    # (nothing committed) reads the other topics again from the beginning
                    continue
                read.add((topic, partition, offset))
                if topic == self.topic:
                    self.raw[(partition, offset)] = (msg.key(), msg.value())
                self.raw_all[(topic, partition, offset)] = (msg.key(), msg.value())
                seen.append(self.decoder.decode(topic, partition, offset, msg.key(), msg.value()))
        finally:
            consumer.close()
        where = ", ".join(topics or [self.topic])
        assert done(seen), f"{where}: condition not met by {len(seen)} events in {timeout_s}s"
        return seen

    def schema_id(self, event: Change) -> int:
        """The registry id of the writer schema of ``event``'s value."""
        assert event.partition is not None and event.offset is not None
        value = self.raw[(event.partition, event.offset)][1]
        assert value is not None
        return schema_id_of(value)

    def row_fields(self, event: Change) -> set[str]:
        """Column names of the row record (``after``) of ``event``'s writer schema."""
        schemas = RegistrySchemaSource(self.settings.schema_registry_url)
        try:
            envelope = schemas.fetch(self.schema_id(event))
        finally:
            schemas.close()
        assert isinstance(envelope, dict)
        # the row record is defined inline once (in "before") and referenced by name after
        images = [f["type"] for f in envelope["fields"] if f["name"] in ("before", "after")]
        row = next(b for union in images for b in union if isinstance(b, dict))
        return {f["name"] for f in row["fields"]}


def values(row: Row | None, *, ignore: tuple[str, ...] = ()) -> dict[str, Any]:
    """A typed row's column values, without ``ignore`` (e.g. a trigger-stamped updated_at)."""
    assert row is not None
    return {k: v for k, v in dataclasses.asdict(row).items() if k not in ignore}


def of_key(events: list[Event], key: str) -> list[Change]:
    """The changes of one row key, in topic order."""
    return [e for e in events if isinstance(e, Change) and e.key == key]


def ops_of(events: list[Event], key: str) -> list[Op]:
    return [e.op for e in of_key(events, key)]


def has_ops(key: str, *ops: Op) -> Callable[[list[Event]], bool]:
    """Done when ``key``'s changes so far are at least ``ops`` (in that order)."""

    def done(events: list[Event]) -> bool:
        return ops_of(events, key)[: len(ops)] == list(ops)

    return done


def all_of(*conditions: Callable[[list[Event]], bool]) -> Callable[[list[Event]], bool]:
    return lambda events: all(c(events) for c in conditions)


def tombstone_after(events: list[Event], change: Change) -> Tombstone | None:
    """The record right after ``change`` in its partition when it is a tombstone."""
    for event in events:
        if (
            isinstance(event, Tombstone)
            and event.partition == change.partition
            and change.offset is not None
            and event.offset == change.offset + 1
        ):
            return event
    return None
