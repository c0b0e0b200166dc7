"""Writer schemas by id: where the edge looks them up.

:class:`SchemaSource` is the lookup the decoder needs. :class:`RegistrySchemaSource` asks the
registry's Confluent-compatible API (``GET /schemas/ids/{id}``); :class:`DictSchemaSource` holds
schemas in memory (tests, offline replay of captured topics). The decoder caches what it gets,
so a source is asked once per id.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import httpx
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from billsync.errors import StackError

Schema = dict[str, Any] | list[Any] | str


class SchemaNotFound(LookupError):
    """The registry has no schema with this id: the record cannot be decoded."""

    def __init__(self, schema_id: int) -> None:
        self.schema_id = schema_id
        super().__init__(f"schema id {schema_id} is not in the registry")


class SchemaSource(Protocol):
    def fetch(self, schema_id: int) -> Schema:
        """The Avro schema (parsed JSON) with this id; :class:`SchemaNotFound` if there is none.

        Any other failure (registry down) raises :class:`StackError`: it is not the record's
        fault, so it must stop the flow instead of dead-lettering good records.
        """
        ...


class DictSchemaSource:
    """Schemas held in a dict (id → schema as JSON text or parsed JSON)."""

    def __init__(self, schemas: Mapping[int, Schema] | None = None) -> None:
        self._schemas: dict[int, Schema] = dict(schemas or {})

    def add(self, schema_id: int, schema: Schema) -> None:
        self._schemas[schema_id] = schema

    def fetch(self, schema_id: int) -> Schema:
        try:
            schema = self._schemas[schema_id]
        except KeyError:
            raise SchemaNotFound(schema_id) from None
        return json.loads(schema) if isinstance(schema, str) else schema


class RegistrySchemaSource:
    """The registry's Confluent-compatible API (Apicurio ``/apis/ccompat/v7``)."""

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._http.close()

    @retry(
        retry=retry_if_exception_type(httpx.TransportError),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.2, max=2),
        reraise=True,
    )
    def _get(self, schema_id: int) -> httpx.Response:
        return self._http.get(f"{self.url}/schemas/ids/{schema_id}")

    def fetch(self, schema_id: int) -> Schema:
        try:
            response = self._get(schema_id)
        except httpx.TransportError as exc:
            raise StackError(
                "schema-registry",
                f"not reachable at {self.url} ({exc.__class__.__name__}); check "
                "SCHEMA_REGISTRY_URL and `billsync stack status`",
            ) from None
        if response.status_code == 404:
            raise SchemaNotFound(schema_id)
        if response.status_code != 200:
            raise StackError(
                "schema-registry",
                f"GET /schemas/ids/{schema_id} answered {response.status_code}: "
                f"{response.text[:300]}",
            )
        body = response.json()
        schema_type = body.get("schemaType", "AVRO")
        if schema_type != "AVRO":
            raise SchemaNotFound(schema_id)  # not an Avro schema: the record is not ours to read
        parsed: Schema = json.loads(body["schema"])
        return parsed
