"""Throwaway copies of the shipped connector templates for integration tests.

A copy gets a unique name (= topic prefix), slot, server id and schema-history topic, so a test
never touches the real ``psa`` / ``crm`` connectors; it is written to a temporary template
directory exactly as an engineer would add a third source (one file). ``cleanup`` deletes the
connector, its PostgreSQL slot and its topics.
"""

from __future__ import annotations

import contextlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connectors.connect_client import ConnectClient
from connectors.templates import load_template


def write_copy(
    directory: Path,
    source: str,
    name: str,
    *,
    tables: list[str] | None = None,
    changes: dict[str, str | None] | None = None,
) -> Path:
    """``directory/<name>.json``: the ``source`` template renamed, optionally narrowed/changed.

    ``tables`` (bare table names) narrows table.include.list (the signal table is kept);
    ``changes`` sets keys (a None value removes the key).
    """
    config = dict(load_template(source).config)
    config["topic.prefix"] = name
    if "slot.name" in config:
        config["slot.name"] = name
    if "database.server.id" in config:
        config["database.server.id"] = str(random.randint(100_000, 2_000_000_000))
    if "schema.history.internal.kafka.topic" in config:
        config["schema.history.internal.kafka.topic"] = f"_billsync.schema-history.{name}"
    if tables is not None:
        entries = config["table.include.list"].split(",")
        keep = [e for e in entries if e.rsplit(".", 1)[-1] in (*tables, "debezium_signal")]
        config["table.include.list"] = ",".join(keep)
    for key, value in (changes or {}).items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    # the uniqueness rule compares against the shipped templates too
    for shipped in ("psa", "crm"):
        target = directory / f"{shipped}.json"
        if not target.exists():
            target.write_text(load_template(shipped).path.read_text(encoding="utf-8"))
    path = directory / f"{name}.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    return path


def cleanup(
    client: ConnectClient,
    name: str,
    *,
    kafka_admin: Any,
    pg_superuser: Callable[[str], Any] | None = None,
) -> None:
    """Delete connector ``name``, its replication slot (if any) and its topics."""
    client.delete(name)
    # the tasks stop asynchronously: topics deleted while a task still writes come back
    # (seen with MariaDB), so wait until Connect no longer knows the connector, then a grace
    deadline = time.monotonic() + 30
    while client.exists(name) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(2)
    if pg_superuser is not None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with pg_superuser("psa") as conn:
                row = conn.execute(
                    "SELECT active FROM pg_replication_slots WHERE slot_name = %s", (name,)
                ).fetchone()
                if row is None:
                    break
                if not row[0]:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                    break
            time.sleep(1)
    topics = [
        t
        for t in kafka_admin.list_topics(timeout=10).topics
        if t.startswith(f"{name}.") or t.endswith(f".{name}") or t == name
    ]
    if topics:
        for future in kafka_admin.delete_topics(topics, operation_timeout=30).values():
            # best effort: a topic that is already gone is fine
            with contextlib.suppress(Exception):
                future.result()
