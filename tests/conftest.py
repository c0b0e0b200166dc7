"""Shared by every tier. Unit tests need nothing; integration fixtures live in tests/integration.

Run order: pytest collects folders alphabetically (chaos, e2e, integration, replay, unit).
This hook runs the tiers from the cheapest and least disruptive to the most: unit, replay
(no services, subprocesses), integration, e2e, chaos. Unit failures show in seconds, and the
fault-injection tests (which kill and restart parts of the shared stack) come last, so
damage one of them leaves behind cannot turn the tiers after it red. Order within a tier is
unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from tests import supervision

HERE = Path(__file__).resolve().parent
# the tiers, each a folder, in the order they run, with the markers of their tests (every
# test of a folder gets them here: ``-m`` selects tiers, strict markers)
TIERS: dict[str, tuple[str, ...]] = {
    "unit": (),
    "replay": ("replay",),
    "integration": ("integration",),
    "e2e": ("e2e", "integration"),
    "chaos": ("chaos", "integration"),
    "soak": ("soak", "integration"),
}
ORDER = tuple(TIERS)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak-runs",
        type=int,
        default=0,
        help="loaded flow runs of the soak tier (tests/soak; 0: the tier collects nothing)",
    )


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The soak tier is opt-in (``make soak``): not collected at all without runs."""
    if collection_path == HERE / "soak" and not config.getoption("soak_runs"):
        return True
    return None


def _folder(item: pytest.Item) -> str:
    parts = Path(str(item.fspath)).resolve().relative_to(HERE).parts
    return parts[0] if parts else ""


def _tier(item: pytest.Item) -> int:
    folder = _folder(item)
    return ORDER.index(folder) if folder in TIERS else len(ORDER)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for marker in TIERS.get(_folder(item), ()):
            item.add_marker(marker)
    items.sort(key=_tier)  # stable: keeps the order inside a tier
    config._billsync_items = list(items)  # type: ignore[attr-defined]  # for the summary below


@pytest.fixture(autouse=True)
def _supervision_context(request: pytest.FixtureRequest) -> Iterator[None]:
    """Which test a stall restart or connector heal of the harness happened in; one that
    happened in a test injecting no fault (not ``chaos``) fails it."""
    supervision.CURRENT[0] = request.node.nodeid
    yield
    supervision.CURRENT[0] = ""
    chaos = request.node.get_closest_marker("chaos") is not None
    why = supervision.unexpected(request.node.nodeid, chaos)
    if why is not None:
        pytest.fail(why)


@pytest.fixture(autouse=True)
def _structlog_defaults() -> Iterator[None]:
    """A test that runs ``billsync run`` in-process (CliRunner) configures structlog to write
    to that runner's stderr, cached; once the runner closed it, every later log call of the
    session would raise "I/O operation on closed file". Each test starts from the defaults."""
    yield
    structlog.reset_defaults()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Every restart and heal the harness did, counted and listed (tests/supervision.py)."""
    chaos = {
        item.nodeid
        for item in getattr(terminalreporter.config, "_billsync_items", [])
        if item.get_closest_marker("chaos") is not None
    }
    terminalreporter.section("supervision: restarts and heals by the test harness")
    for line in supervision.summary(chaos):
        terminalreporter.write_line(line)
