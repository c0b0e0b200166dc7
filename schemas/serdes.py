"""How billsync builds confluent-kafka's schema-registry client and Avro serdes.

Two choices, both made on purpose and used by every caller (outbox relay, CLI readers,
tests):

- **A request timeout.** ``SchemaRegistryClient`` has none by default: one request the
  registry never answers blocks its caller for ever (seen on the local stack: a ``GET``
  Apicurio logged as answered ``404`` while the client kept waiting for the headers). With
  :data:`REQUEST_TIMEOUT_S` the call raises instead, and the caller's retry policy applies
  (the outbox relay retries every 5 s; a CLI command fails with the error).
- **The topic subject-name strategy, explicitly.** From confluent-kafka 2.16 the serializer's
  default is ``ASSOCIATED``: before every new subject it asks the registry's
  ``/associations`` API (Confluent Schema Registry 8.x only) and falls back to the topic
  strategy on ``404``. Apicurio's ccompat API has no associations, and billsync's subjects
  are ``<topic>-key`` / ``<topic>-value`` by contract (``schemas/README.md``), so the lookup
  is one useless request per subject. ``TOPIC`` names the contract directly.
"""

from __future__ import annotations

from typing import Any, Final, cast

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer

REQUEST_TIMEOUT_S: Final = 30
SERIALIZER_CONF: Final[dict[str, Any]] = {
    "auto.register.schemas": True,
    "subject.name.strategy.type": "TOPIC",
}


def registry_client(url: str, *, timeout_s: int = REQUEST_TIMEOUT_S) -> SchemaRegistryClient:
    """A registry client on ``url`` whose every request gives up after ``timeout_s``."""
    return SchemaRegistryClient({"url": url, "timeout": timeout_s})


def avro_serializer(registry: SchemaRegistryClient, schema: str) -> AvroSerializer:
    """An Avro serializer registering ``schema`` under the topic strategy's subject."""
    # cast: confluent_kafka ships no type information (pyproject: mypy overrides)
    return cast(AvroSerializer, AvroSerializer(registry, schema, conf=dict(SERIALIZER_CONF)))


def avro_deserializer(registry: SchemaRegistryClient) -> AvroDeserializer:
    """An Avro deserializer taking the writer schema by id from the Confluent framing."""
    return cast(AvroDeserializer, AvroDeserializer(registry))
