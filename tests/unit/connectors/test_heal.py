"""connectors/heal.py: which connector states get a restart (table-driven, no services)."""

from __future__ import annotations

from typing import Any

import pytest

from connectors import heal as heal_mod
from connectors.connect_client import ConnectorState, TaskState

HB = {"topic.prefix": "crm", "heartbeat.interval.ms": "10000"}


class FakeConnect:
    """The two reads and the one write :func:`heal` makes, recorded."""

    def __init__(self, state: ConnectorState | None, config: dict[str, str]) -> None:
        self.state, self.cfg, self.restarted = state, config, []

    def connectors(self) -> list[str]:
        return ["crm"]

    def status(self, name: str) -> ConnectorState | None:
        return self.state

    def config(self, name: str) -> dict[str, str]:
        return self.cfg

    def restart(self, name: str) -> None:
        self.restarted.append(name)


def state(connector: str, task: str, trace: str | None = None) -> ConnectorState:
    return ConnectorState("crm", connector, tasks=(TaskState(0, task, trace=trace),))


@pytest.mark.parametrize(
    ("st", "config", "age", "restarted", "reason"),
    [
        (state("RUNNING", "RUNNING"), HB, 5.0, False, None),
        (state("RUNNING", "RUNNING"), HB, 61.0, True, "STALE: heartbeat 61s ago"),
        (state("RUNNING", "RUNNING"), HB, None, False, None),  # just registered
        (state("RUNNING", "RUNNING"), {"topic.prefix": "crm"}, 999.0, False, None),  # no beat
        (state("RUNNING", "FAILED", "Boom: gone\n at x"), HB, 1.0, True, "FAILED: Boom: gone"),
        (state("PAUSED", "PAUSED"), HB, 999.0, False, None),  # paused on purpose
        (None, HB, 999.0, False, None),  # not registered
    ],
)
def test_heal_restarts_failed_and_stale_only(
    monkeypatch: pytest.MonkeyPatch,
    st: ConnectorState | None,
    config: dict[str, str],
    age: float | None,
    restarted: bool,
    reason: str | None,
) -> None:
    monkeypatch.setattr(heal_mod, "heartbeat_age", lambda *_a, **_k: age)
    fake: Any = FakeConnect(st, config)
    done = heal_mod.heal(fake, "kafka:9092")
    assert fake.restarted == (["crm"] if restarted else [])
    assert [h.reason for h in done] == ([reason] if reason else [])
