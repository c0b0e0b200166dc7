"""chaos 05 — a source database is down for longer than a minute: the CDC column says so.

Why it exists: Kafka Connect reports a Debezium task RUNNING while its database is gone
(the binlog client waits for its keep-alive to re-connect), so the connector state alone
cannot tell an operator that changes stopped flowing. ``billsync connectors status`` adds
``cdc``, the age of the connector's newest Debezium heartbeat (``connectors/freshness.py``),
``STALE`` after six heartbeat intervals (at least 60 s).

Asserts: with MariaDB stopped for 75 s, ``crm`` is still RUNNING but ``STALE``, while
``psa`` (its database up) is not; after MariaDB starts again ``crm`` is fresh within 60 s
without any operator action. At the end MariaDB runs again whatever happened (``healed``).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

from billsync.settings import Settings
from ops.stack import launcher
from tests.e2e.harness import REPO

OUTAGE_S = 75.0
RECOVER_S = 60.0


def connector_rows(stack: Settings) -> dict[str, dict[str, Any]]:
    proc = subprocess.run(  # our own CLI, fixed arguments
        [sys.executable, "-m", "ops.cli", "connectors", "status", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=REPO,
    )
    rows: list[dict[str, Any]] = json.loads(proc.stdout)
    return {r["connector"]: r for r in rows if r["part"] == "connector"}


def test_stopped_database_shows_as_stale_then_recovers(stack: Settings, healed: None) -> None:
    before = connector_rows(stack)
    assert not str(before["crm"]["cdc"]).startswith("STALE"), before["crm"]
    mariadb = launcher.components(launcher.context(stack, create_secrets=False))["mariadb"]
    launcher.stop_component(mariadb)
    time.sleep(OUTAGE_S)
    during = connector_rows(stack)
    print(f"MariaDB down {OUTAGE_S:.0f}s: crm {during['crm']['state']}, {during['crm']['cdc']}; "
          f"psa {during['psa']['cdc']}")  # fmt: skip
    assert during["crm"]["state"] == "RUNNING"  # what Connect alone would say
    assert str(during["crm"]["cdc"]).startswith("STALE"), during["crm"]
    assert not str(during["psa"]["cdc"]).startswith("STALE"), during["psa"]

    launcher.start(mariadb, lambda _c, _m: None)
    t0 = time.monotonic()
    while True:
        after = connector_rows(stack)["crm"]
        if not str(after["cdc"]).startswith("STALE"):
            print(f"crm fresh again {time.monotonic() - t0:.0f}s after MariaDB started: {after}")
            break
        assert time.monotonic() - t0 < RECOVER_S, f"crm still stale: {after}"
        time.sleep(2)
