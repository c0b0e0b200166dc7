"""Production supervision as users run it (issue 12): systemd units and compose restart
policies. A flow that exits (75: a detected stall; 1: the ERP or registry gone past its retry
window) must be restarted, and the connector heal must run every minute, in both setups."""

from __future__ import annotations

import configparser
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "ops" / "systemd"


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read(UNITS / name, encoding="utf-8")
    return parser


def test_the_flow_unit_restarts_every_exit_with_its_settings_from_a_file() -> None:
    unit = _unit("billsync-run.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("billsync run")
    assert service["Restart"] == "always"  # 75 (stall) and 1 (ERP gone) alike
    assert int(service["RestartSec"]) > 0
    assert service["EnvironmentFile"].startswith("/etc/")  # secrets never in the unit
    assert "PASSWORD" not in (UNITS / "billsync-run.service").read_text().upper()
    assert unit["Install"]["WantedBy"] == "multi-user.target"


def test_the_heal_timer_runs_the_heal_service_every_minute() -> None:
    timer = _unit("billsync-heal.timer")["Timer"]
    assert timer["Unit"] == "billsync-heal.service"
    assert timer["OnUnitActiveSec"] == "60s"
    service = _unit("billsync-heal.service")["Service"]
    assert service["Type"] == "oneshot"
    assert service["ExecStart"].endswith("billsync connectors heal")


def test_compose_restarts_every_long_running_service() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    tools = {n for n, s in services.items() if "tools" in (s.get("profiles") or [])}
    assert tools == {"billsync"}  # the one-off CLI container
    for name, svc in services.items():
        if name not in tools:
            assert svc.get("restart") == "unless-stopped", name
    run = services["billsync-run"]
    assert run["command"] == ["billsync", "run"]
    recovery = run["environment"]["BILLSYNC_RECOVERY_DIR"]
    assert any(v.split(":")[1] == recovery.rsplit("/", 1)[0] for v in run["volumes"])
    assert "connectors heal" in " ".join(services["billsync-heal"]["command"])
