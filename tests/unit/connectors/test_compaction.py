"""CDC table topics are compacted by the Debezium key; the heartbeat topic is not."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from billsync.settings import Settings
from connectors import rules
from connectors.compaction import CDC_TOPIC_CONFIG, KEEP_MS, config_changes
from connectors.templates import render_named

SETTINGS = Settings(
    psa_db_url=SecretStr("postgresql://u:p@127.0.0.1:5433/psa"),
    crm_db_url=SecretStr("mysql://u:p@127.0.0.1:3307/crm"),
)
WEEK = str(KEEP_MS)


@pytest.mark.parametrize("name", ["psa", "crm"])
def test_templates_create_table_topics_compacted(name: str) -> None:
    config = render_named(name, SETTINGS)
    created = {
        k.removeprefix("topic.creation.default."): v
        for k, v in config.items()
        if k.startswith("topic.creation.default.")
    }
    assert created == {**CDC_TOPIC_CONFIG, "replication.factor": "-1", "partitions": "-1"}
    assert created["cleanup.policy"] == "compact"
    assert int(created["min.compaction.lag.ms"]) >= 7 * 24 * 3600 * 1000
    # the heartbeat topic keeps a time-based policy
    assert config["topic.creation.groups"] == "heartbeat"
    assert config["topic.creation.heartbeat.cleanup.policy"] == "delete"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"topic.creation.default.cleanup.policy": "delete"}, "cleanup.policy"),
        ({"topic.creation.default.cleanup.policy": "compact,delete"}, "cleanup.policy"),
        ({"topic.creation.default.min.compaction.lag.ms": "3600000"}, "min.compaction.lag.ms"),
        ({"topic.creation.default.delete.retention.ms": "86400000"}, "delete.retention.ms"),
        ({"topic.creation.default.partitions": ""}, "partitions"),
        ({"topic.creation.groups": ""}, "topic.creation.groups"),
        ({"topic.creation.heartbeat.include": "psa\\..*"}, "topic.creation.groups"),
        ({"topic.creation.heartbeat.cleanup.policy": "compact"}, "topic.creation.groups"),
    ],
)
def test_a_template_that_would_lose_history_is_refused(change: dict[str, str], field: str) -> None:
    (v,) = rules.check("psa", render_named("psa", SETTINGS) | change)
    assert v.field.endswith(field)
    assert v.fix


@pytest.mark.parametrize(
    ("current", "changes"),
    [
        # a topic auto-created before compaction: every setting changes
        ({"cleanup.policy": "delete", "retention.ms": "604800000"}, dict(CDC_TOPIC_CONFIG)),
        # already migrated: nothing to do
        (dict(CDC_TOPIC_CONFIG), {}),
        # an operator's longer lag is kept; a shorter tombstone retention is raised
        (
            {
                "cleanup.policy": "compact",
                "min.compaction.lag.ms": str(KEEP_MS * 2),
                "delete.retention.ms": "86400000",
            },
            {"delete.retention.ms": WEEK},
        ),
        ({"cleanup.policy": "compact,delete"}, dict(CDC_TOPIC_CONFIG)),
    ],
)
def test_config_changes_of_an_existing_topic(
    current: dict[str, str], changes: dict[str, str]
) -> None:
    assert config_changes(current, CDC_TOPIC_CONFIG) == changes
