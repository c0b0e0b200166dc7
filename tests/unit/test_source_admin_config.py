"""The flow's Kafka source lists its partitions without the consumers' own properties.

Bytewax 0.21 builds the AdminClient that lists the partitions from the same ``add_config``
as the partitions' consumers; librdkafka then warned at every start (``CONFWARN
auto.offset.reset is a consumer property``, once per worker). The consumers must still get
``auto.offset.reset=earliest``: without it a resume offset below the log start would jump
to the end of the topic.
"""

from __future__ import annotations

from typing import Any

import bytewax.connectors.kafka as bytewax_kafka
import pytest

from ops.run import runner


def test_partitions_are_listed_without_consumer_only_properties(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[dict[str, Any]] = []

    def admin(config: dict[str, Any]) -> object:
        seen.append(dict(config))
        return object()

    monkeypatch.setattr(runner, "AdminClient", admin)
    monkeypatch.setattr(bytewax_kafka, "_list_parts", lambda _client, topics: iter(["0-t"]))
    source = runner._WatchedKafkaSource(
        ["127.0.0.1:9092"], ["t"], tail=True, add_config={"auto.offset.reset": "earliest"}
    )
    assert source.list_parts() == ["0-t"]
    assert seen == [{"bootstrap.servers": "127.0.0.1:9092"}]
    # the consumers' configuration is untouched
    assert source._add_config == {"auto.offset.reset": "earliest"}
