"""connectors/freshness.py: where a connector's heartbeats are, and when silence is stale."""

from __future__ import annotations

import pytest

from connectors.freshness import heartbeat_topic, stale_after
from connectors.templates import load_template


@pytest.mark.parametrize(
    ("config", "topic"),
    [
        ({"topic.prefix": "crm"}, "__debezium-heartbeat.crm"),
        ({"topic.prefix": "psa", "topic.heartbeat.prefix": "hb"}, "hb.psa"),
    ],
)
def test_heartbeat_topic(config: dict[str, str], topic: str) -> None:
    assert heartbeat_topic(config) == topic


@pytest.mark.parametrize(
    ("interval_ms", "stale_s"),
    [("10000", 60.0), ("30000", 180.0), ("1000", 60.0), ("", 60.0), ("soon", 60.0)],
)
def test_stale_after_six_intervals_at_least_a_minute(interval_ms: str, stale_s: float) -> None:
    assert stale_after({"heartbeat.interval.ms": interval_ms}) == stale_s


@pytest.mark.parametrize("name", ["psa", "crm"])
def test_shipped_templates_have_heartbeats_to_watch(name: str) -> None:
    config = load_template(name).config
    assert int(config["heartbeat.interval.ms"]) > 0
    assert heartbeat_topic(config) == f"__debezium-heartbeat.{name}"
