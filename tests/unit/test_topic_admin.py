"""`billsync run` creates the CDC topics compacted and migrates existing ones in place.

A fake admin (the four confluent_kafka ``AdminClient`` calls, completed futures) holds the
topics and their configuration like a broker would.
"""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

from confluent_kafka.admin import ConfigResource, NewTopic  # type: ignore[attr-defined]  # re-exported at runtime, not in the stubs

from connectors.compaction import CDC_TOPIC_CONFIG
from ops.topics.admin import ensure_topics

SOURCES = ["psa.public.timesheets", "crm.crm.contracts"]
OUTPUTS = ["billing.transactions", "recon.snapshots"]
BROKER_DEFAULT = {"cleanup.policy": "delete", "retention.ms": "604800000"}


def _done(value: Any) -> Future[Any]:
    f: Future[Any] = Future()
    f.set_result(value)
    return f


class FakeAdmin:
    def __init__(self, topics: dict[str, dict[str, str]]) -> None:
        self.topics = topics
        self.altered: dict[str, dict[str, str]] = {}

    def list_topics(self, **_: Any) -> Any:
        return SimpleNamespace(topics=dict.fromkeys(self.topics))

    def create_topics(self, new: list[NewTopic]) -> dict[str, Future[Any]]:
        for t in new:
            self.topics[t.topic] = {**BROKER_DEFAULT, **(t.config or {})}
        return {t.topic: _done(None) for t in new}

    def describe_configs(self, resources: list[ConfigResource]) -> dict[Any, Future[Any]]:
        return {
            r: _done({k: SimpleNamespace(value=v) for k, v in self.topics[r.name].items()})
            for r in resources
        }

    def incremental_alter_configs(self, resources: list[ConfigResource]) -> dict[Any, Any]:
        for r in resources:
            changes = {e.name: str(e.value) for e in r.incremental_configs}
            self.altered[r.name] = changes
            self.topics[r.name].update(changes)
        return {r: _done(None) for r in resources}


def _compacted(config: dict[str, str]) -> bool:
    return all(config.get(k) == v for k, v in CDC_TOPIC_CONFIG.items())


def test_new_source_topics_are_created_compacted_outputs_as_before() -> None:
    admin = FakeAdmin({})
    changes = ensure_topics(admin, "k:9092", SOURCES, OUTPUTS)
    assert all(_compacted(admin.topics[t]) for t in SOURCES)
    assert admin.topics["recon.snapshots"]["cleanup.policy"] == "compact"
    assert admin.topics["billing.transactions"] == BROKER_DEFAULT
    assert {(c.topic, c.action) for c in changes} == {(t, "created") for t in SOURCES + OUTPUTS}


def test_existing_delete_policy_source_topics_are_migrated() -> None:
    """Topics auto-created before the change (delete, 168 h) get compaction in place."""
    admin = FakeAdmin({t: dict(BROKER_DEFAULT) for t in (*SOURCES, *OUTPUTS)})
    changes = ensure_topics(admin, "k:9092", SOURCES, OUTPUTS)
    assert all(_compacted(admin.topics[t]) for t in SOURCES)
    assert admin.altered == {t: dict(CDC_TOPIC_CONFIG) for t in SOURCES}
    assert admin.topics["billing.transactions"] == BROKER_DEFAULT  # outputs are left alone
    assert [(c.topic, c.action) for c in changes] == [(t, "altered") for t in SOURCES]
    # the next start finds nothing to do
    admin.altered.clear()
    assert ensure_topics(admin, "k:9092", SOURCES, OUTPUTS) == []
    assert admin.altered == {}
