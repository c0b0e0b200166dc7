"""Connectors as code against the real Connect: good configs run, bad ones are refused.

Each test registers throwaway copies of connectors/psa.json and connectors/crm.json (unique
name = topic prefix, slot, server id) and removes connector, slot and topics afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from billsync.settings import Settings
from connectors.connect_client import ConnectClient
from connectors.registration import ConnectorConfigInvalid, register, validate
from tests.integration.connector_copies import cleanup, write_copy


@pytest.fixture
def connect(stack: Settings) -> Iterator[ConnectClient]:
    with ConnectClient(stack.connect_url) as client:
        yield client


@pytest.mark.parametrize("source", ["psa", "crm"])
def test_register_runs_every_task_and_is_idempotent(
    source: str,
    stack: Settings,
    connect: ConnectClient,
    tmp_path: Path,
    unique_name: Callable[[str], str],
    kafka_admin: Any,
    pg_superuser: Callable[[str], Any],
) -> None:
    name = unique_name(source)
    # the smallest table keeps the snapshot short; the config is otherwise the shipped one
    write_copy(tmp_path, source, name, tables=["employees" if source == "psa" else "accounts"])
    try:
        first = register(name, stack, connect, directory=tmp_path, timeout_s=180)
        assert first.created
        assert first.state.running and first.state.tasks
        assert all(t.state == "RUNNING" for t in first.state.tasks)
        again = register(name, stack, connect, directory=tmp_path, timeout_s=180)
        assert not again.created and again.state.running
        registered = connect.config(name)
        assert registered is not None and registered["topic.prefix"] == name
        assert registered["database.password"].startswith("${env:")
    finally:
        cleanup(
            connect,
            name,
            kafka_admin=kafka_admin,
            pg_superuser=pg_superuser if source == "psa" else None,
        )


BAD_CONFIGS: list[tuple[str, str, dict[str, str | None], str, str]] = [
    # (id, source, changes, field named, words in the problem)
    (
        "wrong-password",
        "psa",
        {"database.password": "${env:BILLSYNC_DEBEZIUM_CRM_PASSWORD}"},
        "database.password",
        "password authentication failed",
    ),
    (
        "wrong-password-crm",
        "crm",
        {"database.password": "${env:BILLSYNC_DEBEZIUM_PSA_PASSWORD}"},
        "database.password",
        "access denied",
    ),
    (
        "unknown-table",
        "psa",
        {"table.include.list": "public.employees,public.no_such_table,public.debezium_signal"},
        "table.include.list",
        "no_such_table",
    ),
    (
        "heartbeat-not-writable",
        "psa",
        {"heartbeat.action.query": "INSERT INTO public.employees (employee_id) VALUES ('hb')"},
        "heartbeat.action.query",
        "may not insert",
    ),
    ("literal-secret", "crm", {"database.password": "hunter2"}, "database.password", "literal"),
    ("missing-converter", "psa", {"value.converter": None}, "value.converter", "missing"),
    ("double-decimals", "crm", {"decimal.handling.mode": "double"}, "decimal.handling.mode", ""),
]


@pytest.mark.parametrize(
    ("source", "changes", "field", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in BAD_CONFIGS],
)
def test_bad_config_is_refused_and_nothing_is_registered(
    source: str,
    changes: dict[str, str | None],
    field: str,
    words: str,
    stack: Settings,
    connect: ConnectClient,
    tmp_path: Path,
    unique_name: Callable[[str], str],
) -> None:
    name = unique_name(f"bad_{source}")
    write_copy(tmp_path, source, name, changes=changes)

    result = validate(name, stack, connect, directory=tmp_path)
    assert not result.ok
    named = [v for v in result.violations if v.field.startswith(field)]
    assert named, result.violations
    assert any(words.lower() in v.problem.lower() for v in named), named
    assert all(v.fix for v in result.violations)

    with pytest.raises(ConnectorConfigInvalid) as info:
        register(name, stack, connect, directory=tmp_path, timeout_s=30)
    assert "nothing registered" in str(info.value)
    assert not connect.exists(name)
    assert name not in connect.connectors()
