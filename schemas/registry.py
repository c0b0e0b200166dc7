"""The Avro schemas of every topic billsync writes, and their registry subjects.

For the sinks::

    from schemas.registry import TOPICS, load_schema, schema_str, key_schema_str
    parsed = load_schema("billing.transactions")   # fastavro-parsed, cached
    text = schema_str("billing.transactions")       # for confluent-kafka's AvroSerializer

A schema lives in ``schemas/<topic>.avsc``; its registry subject is ``<topic>-value``. Keyed
topics have an Avro ``"string"`` key under ``<topic>-key`` (see :data:`KEYS` for each key's
format).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import fastavro

from billsync.errors import ConfigError

SCHEMA_DIR = Path(__file__).resolve().parent

TOPICS: tuple[str, ...] = (
    "billing.transactions",
    "billing.exceptions",
    "recon.snapshots",
    "billing.dlq",
)

# topic -> how its string key is formed; topics not listed are unkeyed
KEYS: dict[str, str] = {
    "billing.transactions": "source_type|source_id",
    "billing.exceptions": "source_type|source_id",
    "recon.snapshots": "project_id|period",
}

KEY_SCHEMA = '"string"'
COMPATIBILITY = "BACKWARD"


def _known(topic: str) -> None:
    if topic not in TOPICS:
        raise ConfigError(
            f"no schema for topic {topic!r}",
            field="topic",
            fix=f"use one of {', '.join(TOPICS)} (schemas/<topic>.avsc)",
        )


def schema_path(topic: str) -> Path:
    _known(topic)
    return SCHEMA_DIR / f"{topic}.avsc"


@cache
def schema_str(topic: str) -> str:
    """The schema text of ``topic``'s value, compact JSON (what is registered)."""
    raw = json.loads(schema_path(topic).read_text(encoding="utf-8"))
    return json.dumps(raw, separators=(",", ":"), ensure_ascii=False)


@cache
def load_schema(topic: str) -> Any:
    """The fastavro-parsed value schema of ``topic``: parse once, reuse for every record."""
    return fastavro.parse_schema(json.loads(schema_str(topic)))


def key_schema_str(topic: str) -> str | None:
    """The key schema text of ``topic`` (Avro string), or None for an unkeyed topic."""
    _known(topic)
    return KEY_SCHEMA if topic in KEYS else None


def key_of(topic: str, record: dict[str, Any]) -> str:
    """The string key of a record of a keyed topic, e.g. ``"PRJ-00001|2025-07"``."""
    _known(topic)
    if topic not in KEYS:
        raise ConfigError(f"topic {topic} is unkeyed", field="topic", fix="send a null key")
    return "|".join(str(record[part]) for part in KEYS[topic].split("|"))


@dataclass(frozen=True)
class Subject:
    """One registry subject: a topic's key or value schema."""

    name: str
    topic: str
    kind: Literal["key", "value"]
    schema: str


def subjects(topics: tuple[str, ...] = TOPICS) -> list[Subject]:
    """Every subject billsync registers: ``<topic>-value`` and, for keyed topics, ``-key``."""
    out = []
    for topic in topics:
        out.append(Subject(f"{topic}-value", topic, "value", schema_str(topic)))
        key = key_schema_str(topic)
        if key is not None:
            out.append(Subject(f"{topic}-key", topic, "key", key))
    return out
