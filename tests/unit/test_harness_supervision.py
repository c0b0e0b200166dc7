"""The session summary counts every restart and heal of the harness and names unexpected
ones (issue 12: a run must show the faults it recovered from)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests import supervision as sv


@pytest.fixture
def events() -> Iterator[list[sv.Event]]:
    saved = list(sv.EVENTS)
    sv.EVENTS.clear()
    yield sv.EVENTS
    sv.EVENTS[:] = saved


def test_restarts_and_heals_are_counted_and_unexpected_ones_named(
    events: list[sv.Event],
) -> None:
    sv.CURRENT[0] = "tests/e2e/test_01_story.py::test_story"
    sv.record(sv.STALL_RESTART, "flow e2e_1, start #2")
    sv.CURRENT[0] = "tests/chaos/test_02_restarts.py::test_restarts"
    sv.record(sv.CONNECTOR_HEAL, "crm (STALE)")
    sv.CURRENT[0] = ""
    lines = sv.summary({"tests/chaos/test_02_restarts.py::test_restarts"})
    assert lines[0] == "1 stall restart(s), 1 connector heal(s) by the test harness"
    assert "UNEXPECTED: stall restart in tests/e2e/test_01_story.py" in lines[1]
    assert "expected (fault injected): connector heal in tests/chaos" in lines[2]


def test_a_quiet_run_says_so(events: list[sv.Event]) -> None:
    assert sv.summary(set()) == ["0 stall restart(s), 0 connector heal(s) by the test harness"]


def test_a_recovery_fails_a_test_that_injects_no_fault(events: list[sv.Event]) -> None:
    story, chaos = "tests/e2e/test_01_story.py::test_story", "tests/chaos/t.py::test_kill"
    assert sv.unexpected(story, injects_faults=False) is None
    sv.CURRENT[0] = story
    sv.record(sv.CONNECTOR_HEAL, "psa (FAILED)")
    sv.CURRENT[0] = chaos
    sv.record(sv.STALL_RESTART, "flow e2e_2, start #3")
    sv.CURRENT[0] = ""
    why = sv.unexpected(story, injects_faults=False)
    assert why is not None and "1 time(s)" in why and "psa (FAILED)" in why
    assert sv.unexpected(chaos, injects_faults=True) is None  # reported, not failed
