"""Restart connectors that failed or stopped streaming — the operator action, automated.

Two states need an operator: a task ``FAILED`` (Connect does not restart it by itself) and
a task ``RUNNING`` whose stream is gone — no Debezium heartbeat for longer than
:func:`connectors.freshness.stale_after`. The second was seen on the local stack when the
Apicurio converter waited for ever on a registry response (ARCHITECTURE.md section 6) and,
for up to a keep-alive interval, after a MariaDB restart. In both cases
``POST /connectors/NAME/restart?includeTasks=true`` starts fresh task instances that resume
from the committed offsets, so nothing is lost (at-least-once; the flow's diff against the
ERP makes replays harmless).

:func:`heal` looks at the given connectors once and restarts those in either state; it
returns what it did. ``billsync connectors heal`` runs it once (a supervisor or a systemd
timer can run it every minute); the e2e and chaos harness runs it while it waits, and prints
each restart.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from connectors.connect_client import ConnectClient
from connectors.freshness import describe, heartbeat_age, heartbeat_topic


@dataclass(frozen=True, slots=True)
class Healed:
    connector: str
    reason: str  # "FAILED" or "STALE: heartbeat 83s ago"


def diagnose(client: ConnectClient, name: str, bootstrap: str) -> str | None:
    """Why ``name`` needs a restart, or None when it is running and streaming (or has no
    heartbeat yet, e.g. just registered)."""
    state = client.status(name)
    if state is None:
        return None
    if state.failed:
        return "FAILED: " + (state.first_trace() or "no trace")[:200]
    if not state.running:
        return None  # starting, paused or stopped on purpose: not ours to touch
    config = client.config(name) or {}
    if not config.get("heartbeat.interval.ms", "").strip():
        return None
    seen = describe(config, heartbeat_age(bootstrap, heartbeat_topic(config)))
    return seen if seen.startswith("STALE") else None


def heal(client: ConnectClient, bootstrap: str, names: Iterable[str] | None = None) -> list[Healed]:
    """Restart every connector of ``names`` (default: all registered) that is FAILED or
    STALE; return one :class:`Healed` per restart."""
    done: list[Healed] = []
    for name in list(names) if names is not None else client.connectors():
        reason = diagnose(client, name, bootstrap)
        if reason is not None:
            client.restart(name)
            done.append(Healed(name, reason))
    return done
