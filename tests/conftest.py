"""Shared by every tier. Unit tests need nothing; integration fixtures live in tests/integration.

Run order: pytest collects folders alphabetically (chaos, e2e, integration, unit). This hook
runs the tiers from the cheapest and least disruptive to the most: unit, integration, e2e,
chaos. Unit failures show in seconds, and the fault-injection tests (which kill and restart
parts of the shared stack) come last, so damage one of them leaves behind cannot turn the
tiers after it red. Order within a tier is unchanged.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
TIERS = ("unit", "integration", "e2e", "chaos")


def _tier(item: pytest.Item) -> int:
    parts = Path(str(item.fspath)).resolve().relative_to(HERE).parts
    return TIERS.index(parts[0]) if parts and parts[0] in TIERS else len(TIERS)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_tier)  # stable: keeps the order inside a tier
