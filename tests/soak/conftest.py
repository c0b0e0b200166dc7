"""soak tier: many short loaded flow runs against the real stack, to measure how often the
flow stalls or a connector needs healing (issue 12). Not part of ``make test``: selected with
``--soak-runs N`` (``make soak RUNS=N``); without it the tier collects nothing.

Fixtures are the chaos tier's (own ids, own flow and ERP schema per run, a load thread).
"""

from __future__ import annotations

import pytest

from tests.chaos.conftest import load
from tests.e2e.conftest import erp_of, make_flow, prefix, sources, stack

__all__ = ["erp_of", "load", "make_flow", "prefix", "sources", "stack"]  # fixtures reused


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "soak_run" in metafunc.fixturenames:
        runs = int(metafunc.config.getoption("soak_runs"))
        metafunc.parametrize("soak_run", range(1, runs + 1))
