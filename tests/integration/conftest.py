"""Integration tier: the real local stack, started once per session (or reused when running).

Fixtures for every integration test:

- ``stack``: session-scoped ``Settings`` of a healthy stack (connection URLs filled in from
  ``<stack_dir>/stack.env``). Reuses a healthy running stack; otherwise installs and starts it,
  and at session end stops only the components this session started.
- ``unique_name``: ``unique_name("pipe")`` -> ``"it_pipe_3f9c1a2b"``; safe for topics,
  consumer groups, connector names, PostgreSQL slot names and table names.
- ``kafka_admin``: a confluent_kafka ``AdminClient`` on the stack's broker.
- ``registry``: a confluent_kafka ``SchemaRegistryClient`` on the registry's ccompat API.
- ``psa_engine`` / ``crm_engine`` / ``erp_engine``: SQLAlchemy engines as the application users.
- ``pg_superuser``: a callable returning a superuser psycopg connection to a database of the
  private cluster (autocommit), e.g. to drop replication slots.

Every test collected under tests/integration gets the ``integration`` marker (tests/conftest.py).
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, create_engine

from billsync.settings import Settings, get_settings, stack_dir_from_env
from ops.stack import launcher
from ops.stack.component import StackContext
from ops.stack.postgres import Postgres


def _settings() -> Settings:
    env_file = stack_dir_from_env() / "stack.env"
    return Settings(_env_file=env_file if env_file.exists() else None)  # type: ignore[call-arg]  # pydantic-settings init kwarg


def _quiet(component: str, message: str) -> None:
    """Progress of `up` is not interesting inside a test session."""


PREPARE = (
    ("db", "init"),
    ("schemas", "register"),
    ("connectors", "register", "psa"),
    ("connectors", "register", "crm"),
    ("connectors", "register", "erp"),
)


def _prepare_sources() -> None:
    """What `make demo` does before the flow, idempotently: source tables (and Debezium's
    grants; the ERP's accounting_periods and its publication), output schemas, the psa, crm
    and erp connectors RUNNING. A fresh stack (CI) has none of them; a running one changes
    nothing."""
    for args in PREPARE:
        proc = subprocess.run(  # noqa: S603  # our own CLI, fixed arguments
            [sys.executable, "-m", "ops.cli", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if proc.returncode != 0:
            pytest.fail(
                f"billsync {' '.join(args)} failed ({proc.returncode}):\n"
                f"{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}",
                pytrace=False,
            )


@pytest.fixture(scope="session")
def stack() -> Iterator[Settings]:
    settings = _settings()
    rows = launcher.status(settings)
    started: list[str] = []
    if not all(row["healthy"] for row in rows):
        results = launcher.up(settings, _quiet, lambda _msg: None)
        started = [r.component for r in results if not r.reused]
        settings = _settings()  # now with the URLs of the freshly written stack.env
    # code under test that reads the process settings must see that stack.env too, even if
    # an earlier (unit) test cached settings from before it existed
    get_settings.cache_clear()
    _prepare_sources()
    yield settings
    if started:
        ctx = launcher.context(settings, create_secrets=False)
        comps = launcher.components(ctx)
        for name in reversed(launcher.START_ORDER):
            if name in started:
                launcher.stop_component(comps[name])


@pytest.fixture(autouse=True)
def _stack_is_up(stack: Settings) -> None:
    """Every integration test runs against the started stack, also when it takes no
    fixture of it (run alone on a fresh clone, it starts the stack first)."""


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    def make(prefix: str) -> str:
        return f"it_{prefix}_{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture(scope="session")
def kafka_admin(stack: Settings) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": stack.kafka_bootstrap})


@pytest.fixture(scope="session")
def registry(stack: Settings) -> Any:
    from schemas.serdes import registry_client

    return registry_client(stack.schema_registry_url)


@pytest.fixture(scope="session")
def psa_engine(stack: Settings) -> Iterator[Engine]:
    engine = create_engine(stack.require("psa_db_url"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def crm_engine(stack: Settings) -> Iterator[Engine]:
    engine = create_engine(stack.require("crm_db_url"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def erp_engine(stack: Settings) -> Iterator[Engine]:
    engine = create_engine(stack.require("erp_db_url"))
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def pg_superuser(stack: Settings) -> Callable[[str], psycopg.Connection[Any]]:
    ctx: StackContext = launcher.context(stack, create_secrets=False)
    postgres = Postgres(ctx)

    def connect(dbname: str = "postgres") -> psycopg.Connection[Any]:
        return postgres.connect(dbname)

    return connect
