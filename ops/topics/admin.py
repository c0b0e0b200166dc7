"""Create billsync's topics and keep the CDC table topics compacted (the Kafka admin API).

``billsync run`` calls :func:`ensure_topics` at every start. Missing topics are created — the
source topics with :data:`connectors.compaction.CDC_TOPIC_CONFIG` (the flow may start before
a connector created them), ``recon.snapshots`` compacted, the other outputs with the broker's
defaults. Source topics that exist with another configuration (created before the CDC topics
were compacted, by Connect or by the broker's auto-creation: ``cleanup.policy=delete``, 168 h)
are altered in place (``IncrementalAlterConfigs``, only the settings that differ), so a
running installation is migrated by its next start. Records already removed by the old
retention do not come back: ``ops/README.md`` ("Losing the recovery store") says how to
re-snapshot the connectors once after the migration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # re-exported at runtime, not in the stubs
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from billsync.errors import StackError
from connectors.compaction import CDC_TOPIC_CONFIG, config_changes

COMPACTED_OUTPUTS = ("recon.snapshots",)
_TIMEOUT_S = 30


class Admin(Protocol):
    """The four admin calls used here (confluent_kafka ``AdminClient``)."""

    def list_topics(self, *args: Any, **kwargs: Any) -> Any: ...
    def create_topics(self, *args: Any, **kwargs: Any) -> Any: ...
    def describe_configs(self, *args: Any, **kwargs: Any) -> Any: ...
    def incremental_alter_configs(self, *args: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class TopicChange:
    """One topic created or altered: what it was set to."""

    topic: str
    action: str  # "created" or "altered"
    config: Mapping[str, str]


def wanted_config(topic: str, source_topics: Sequence[str]) -> dict[str, str]:
    if topic in source_topics:
        return dict(CDC_TOPIC_CONFIG)
    if topic in COMPACTED_OUTPUTS:
        return {"cleanup.policy": "compact"}
    return {}


def ensure_topics(
    admin: Admin, bootstrap: str, source_topics: Sequence[str], output_topics: Sequence[str]
) -> list[TopicChange]:
    """Create the missing topics and bring existing source topics to the compaction policy."""
    try:
        existing = set(admin.list_topics(timeout=15).topics)
    except KafkaException as exc:
        raise StackError("kafka", f"not reachable at {bootstrap}: {exc}") from None
    changes = _create(
        admin, [t for t in (*source_topics, *output_topics) if t not in existing], source_topics
    )
    changes += _alter(admin, [t for t in source_topics if t in existing])
    return changes


def _create(admin: Admin, topics: Sequence[str], source_topics: Sequence[str]) -> list[TopicChange]:
    if not topics:
        return []
    new = [
        NewTopic(t, num_partitions=1, replication_factor=1, config=wanted_config(t, source_topics))
        for t in topics
    ]
    out = []
    for topic, future in admin.create_topics(new).items():
        try:
            future.result(_TIMEOUT_S)
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):  # another process was first
                raise StackError("kafka", f"cannot create topic {topic}: {exc}") from None
            continue
        out.append(TopicChange(topic, "created", wanted_config(topic, source_topics)))
    return out


def _alter(admin: Admin, topics: Sequence[str]) -> list[TopicChange]:
    if not topics:
        return []
    described = admin.describe_configs([ConfigResource(ResourceType.TOPIC, t) for t in topics])
    plans: dict[str, dict[str, str]] = {}
    for resource, future in described.items():
        try:
            entries = future.result(_TIMEOUT_S)
        except KafkaException as exc:
            raise StackError("kafka", f"cannot read the config of {resource.name}: {exc}") from None
        current = {name: entry.value for name, entry in entries.items()}
        plan = config_changes(current, CDC_TOPIC_CONFIG)
        if plan:
            plans[resource.name] = plan
    if not plans:
        return []
    resources = [
        ConfigResource(
            ResourceType.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
                for k, v in plan.items()
            ],
        )
        for topic, plan in plans.items()
    ]
    for resource, future in admin.incremental_alter_configs(resources).items():
        try:
            future.result(_TIMEOUT_S)
        except KafkaException as exc:
            raise StackError(
                "kafka",
                f"cannot set {resource.name} to {plans[resource.name]}: {exc} "
                "(billsync's Kafka user needs ALTER_CONFIGS on the CDC topics)",
            ) from None
    return [TopicChange(topic, "altered", plan) for topic, plan in plans.items()]
