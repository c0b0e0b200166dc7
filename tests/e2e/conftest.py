"""e2e tier: the whole pipeline (CDC → ``billsync run`` → ERP + topics) on the real stack.

Every test collected here gets the ``e2e`` and ``integration`` markers (tests/conftest.py).
The session stack fixture is the integration tier's (``tests/integration/conftest.py``:
reuses a healthy stack or starts it once); this file adds:

- ``prefix``: a per-test id prefix (``E2E-3f9c1a``) for every row the test writes;
- ``sources``: :class:`Sources` on the real PSA and CRM; rows it inserted are deleted at
  the end of the test;
- ``make_flow``: ``make_flow(*run_options)`` -> a started-later :class:`Flow` (``billsync
  run`` with those options) with a fresh ERP schema (``e2e_<hex>``, dropped at the end),
  recovery dir and metrics port of its own; stopped at the end of the test.
  ``erp_of(flow)`` gives an :class:`Erp` reader on its schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from billsync.settings import Settings
from connectors.engines import crm_engine, psa_engine
from tests.e2e.harness import Erp, Flow, Sources
from tests.integration.conftest import stack

__all__ = ["stack"]  # the integration tier's session fixture, re-exported for this folder


@pytest.fixture
def prefix() -> str:
    return f"E2E-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def sources(stack: Settings) -> Iterator[Sources]:
    psa, crm = psa_engine(stack), crm_engine(stack)
    s = Sources(psa, crm)
    yield s
    s.cleanup()
    psa.dispose()
    crm.dispose()


@pytest.fixture
def make_flow(stack: Settings, tmp_path: Path) -> Iterator[Callable[..., Flow]]:
    # pre-ping: a chaos test restarts PostgreSQL mid-test; the teardown must not reuse a dead
    # pooled connection
    base = create_engine(stack.require("erp_db_url"), pool_pre_ping=True)
    made: list[Flow] = []

    def make(*args: str, env: dict[str, str] | None = None) -> Flow:
        schema = f"e2e_{uuid.uuid4().hex[:10]}"
        with base.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        run_dir = tmp_path / schema
        run_dir.mkdir()
        flow = Flow(stack, schema, run_dir / "recovery", run_dir / "flow.log", args=args,
                    extra_env=dict(env or {}))  # fmt: skip
        made.append(flow)
        return flow

    yield make
    for flow in made:
        flow.stop()
        with base.begin() as conn:
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{flow.schema}" CASCADE'))
    base.dispose()


@pytest.fixture
def erp_of() -> Iterator[Callable[[Flow], Erp]]:
    readers: list[Erp] = []

    def make(flow: Flow) -> Erp:
        erp = Erp(flow.erp_url)
        readers.append(erp)
        return erp

    yield make
    for erp in readers:
        erp.dispose()
