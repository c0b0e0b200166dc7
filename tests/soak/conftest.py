"""soak tier: many short runs against the real stack, to measure how often the known issues
of ARCHITECTURE.md section 6 strike (issue 12). Not part of ``make test``: selected with
``--soak-runs N`` (``make soak RUNS=N``; ``SOAK=stall`` or ``SOAK=registry`` runs one half);
without it the tier collects nothing.

- ``test_stall_rate.py``: loaded flow runs; fixtures are the chaos tier's (own ids, own flow
  and ERP schema per run, a load thread).
- ``test_registry_hang_rate.py``: new throwaway connectors under that load; ``make_throwaway``
  is the CDC scenario catalogue's (``tests/integration/cdc/conftest.py``: rows, connector,
  slot and topics deleted at teardown), without its rerun (a marker of that folder only).
"""

from __future__ import annotations

import pytest

from tests.chaos.conftest import load
from tests.e2e.conftest import erp_of, make_flow, prefix, sources, stack
from tests.integration.cdc.conftest import connect, decoder, make_throwaway
from tests.integration.conftest import (
    crm_engine,
    kafka_admin,
    pg_superuser,
    psa_engine,
    unique_name,
)

__all__ = [  # fixtures reused
    "connect",
    "crm_engine",
    "decoder",
    "erp_of",
    "kafka_admin",
    "load",
    "make_flow",
    "make_throwaway",
    "pg_superuser",
    "prefix",
    "psa_engine",
    "sources",
    "stack",
    "unique_name",
]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "soak_run" in metafunc.fixturenames:
        runs = int(metafunc.config.getoption("soak_runs"))
        metafunc.parametrize("soak_run", range(1, runs + 1))
