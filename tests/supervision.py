"""What the test harness did that a supervisor does in production: stall restarts of the flow
(exit 75 from its watchdog) and connector heals. Every one is recorded against the test it
happened in and printed in the session summary (and so in CI's log): a run shows how often
the faults of ARCHITECTURE.md's known issues struck, instead of hiding them behind a green
result. Chaos tests inject faults, so restarts there are expected and reported; in any other
test a restart or heal FAILS the test (:func:`unexpected`, called by tests/conftest.py when
the test ends): the harness may recover so the rest of the test can run, but it cannot turn
a fault into a pass (issue 12).
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


def unexpected(test: str, injects_faults: bool) -> str | None:
    """Why ``test`` fails, if the harness restarted or healed anything in it and it injects
    no fault; None otherwise."""
    if injects_faults:
        return None
    mine = [e for e in EVENTS if e.test == test]
    if not mine:
        return None
    listed = "; ".join(f"{e.kind}: {e.detail}" for e in mine)
    return (
        f"the test harness had to recover {len(mine)} time(s) in a test that injects no "
        f"fault ({listed}): a fault of ARCHITECTURE.md's known issues struck"
    )
