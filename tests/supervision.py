"""What the test harness did that a supervisor does in production: stall restarts of the flow
(exit 75 from its watchdog) and connector heals. Every one is recorded against the test it
happened in and printed in the session summary (and so in CI's log): a run shows how often
the faults of ARCHITECTURE.md's known issues struck, instead of hiding them behind a green
result. Chaos tests inject faults, so restarts there are expected; elsewhere each one is
listed as unexpected.
"""

from __future__ import annotations

from dataclasses import dataclass

STALL_RESTART = "stall restart"
CONNECTOR_HEAL = "connector heal"


@dataclass(frozen=True)
class Event:
    test: str
    kind: str
    detail: str


EVENTS: list[Event] = []
CURRENT = [""]  # the node id of the running test (set by tests/conftest.py)


def record(kind: str, detail: str) -> None:
    EVENTS.append(Event(CURRENT[0] or "(session setup)", kind, detail))


def summary(chaos_tests: set[str]) -> list[str]:
    """The lines of the session summary."""
    stalls = sum(e.kind == STALL_RESTART for e in EVENTS)
    heals = sum(e.kind == CONNECTOR_HEAL for e in EVENTS)
    lines = [f"{stalls} stall restart(s), {heals} connector heal(s) by the test harness"]
    for e in EVENTS:
        where = "expected (fault injected)" if e.test in chaos_tests else "UNEXPECTED"
        lines.append(f"  {where}: {e.kind} in {e.test}: {e.detail}")
    return lines
