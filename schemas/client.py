"""A small client of the Confluent-compatible schema registry REST API.

Works against Apicurio Registry's ``/apis/ccompat/v7`` (the local stack) and Confluent
Schema Registry alike: only the endpoints both implement are used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

import httpx

from billsync.errors import BillsyncError, StackError

_CT = "application/vnd.schemaregistry.v1+json"
# Apicurio's native v2 API, which its Kafka Connect converters call (connectors, ops/stack)
REGISTRY_V2_PATH: Final = "/apis/registry/v2"


class RegistryError(BillsyncError):
    """The registry answered with an error: HTTP status, Confluent error code and message."""

    def __init__(self, what: str, status: int, code: int | None, message: str) -> None:
        self.status = status
        self.code = code
        super().__init__(f"schema registry: {what}: HTTP {status} (error {code}): {message}")


@dataclass(frozen=True)
class Registered:
    subject: str
    id: int
    version: int


@dataclass(frozen=True)
class Compatibility:
    subject: str
    compatible: bool
    registered: bool  # False: nothing to compare with yet
    messages: tuple[str, ...]


class RegistryClient:
    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            timeout=timeout,
            headers={"Content-Type": _CT, "Accept": _CT},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, what: str, json: Any = None) -> Any:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise StackError(
                "schema registry",
                f"{self.base_url} unreachable ({exc}) — is the local stack up "
                "(`billsync stack up`) or SCHEMA_REGISTRY_URL right?",
            ) from None
        if response.status_code >= 400:
            try:
                body = response.json()
                code, message = body.get("error_code"), str(body.get("message", body))
            except ValueError:
                code, message = None, response.text[:300]
            raise RegistryError(what, response.status_code, code, message)
        return response.json() if response.content else None

    @staticmethod
    def _s(subject: str) -> str:
        return quote(subject, safe="")

    def lookup(self, subject: str, schema: str) -> Registered | None:
        """The registered id/version of exactly this schema under ``subject``, if any."""
        try:
            body = self._call(
                "POST", f"/subjects/{self._s(subject)}", f"look up {subject}", {"schema": schema}
            )
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        return Registered(subject, int(body["id"]), int(body["version"]))

    def register(self, subject: str, schema: str) -> Registered:
        """Register ``schema`` (idempotent: an identical schema keeps its id and version)."""
        found = self.lookup(subject, schema)
        if found is not None:
            return found
        body = self._call(
            "POST",
            f"/subjects/{self._s(subject)}/versions",
            f"register {subject}",
            {"schema": schema, "schemaType": "AVRO"},
        )
        found = self.lookup(subject, schema)
        if found is None:  # registries that do not support lookup right after register
            return Registered(subject, int(body["id"]), self.latest_version(subject))
        return found

    def latest_version(self, subject: str) -> int:
        body = self._call(
            "GET", f"/subjects/{self._s(subject)}/versions/latest", f"latest {subject}"
        )
        return int(body["version"])

    def latest_schema(self, subject: str) -> str:
        body = self._call(
            "GET", f"/subjects/{self._s(subject)}/versions/latest", f"latest {subject}"
        )
        return str(body["schema"])

    def subjects(self) -> list[str]:
        return [str(s) for s in self._call("GET", "/subjects", "list subjects")]

    def set_compatibility(self, subject: str, level: str) -> None:
        self._call(
            "PUT", f"/config/{self._s(subject)}", f"set {subject} compatibility",
            {"compatibility": level},
        )  # fmt: skip

    def get_compatibility(self, subject: str) -> str | None:
        try:
            body = self._call("GET", f"/config/{self._s(subject)}", f"{subject} compatibility")
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        level = body.get("compatibilityLevel") or body.get("compatibility")
        return str(level) if level else None

    def check(self, subject: str, schema: str) -> Compatibility:
        """Ask the registry whether ``schema`` may follow the latest version of ``subject``."""
        try:
            self.latest_version(subject)
        except RegistryError as exc:
            if exc.status == 404:  # nothing registered yet: anything may be the first version
                return Compatibility(subject, True, False, ())
            raise
        try:
            body = self._call(
                "POST",
                f"/compatibility/subjects/{self._s(subject)}/versions/latest?verbose=true",
                f"check {subject}",
                {"schema": schema, "schemaType": "AVRO"},
            )
        except RegistryError as exc:
            if exc.status == 404:  # subject (or version) not registered yet
                return Compatibility(subject, True, False, ())
            raise
        messages = body.get("messages") or []
        return Compatibility(
            subject,
            bool(body.get("is_compatible")),
            True,
            tuple(str(m) for m in messages),
        )

    def delete_subject(self, subject: str) -> None:
        """Soft-delete then hard-delete a subject (tests clean up their own subjects)."""
        path = f"/subjects/{self._s(subject)}"
        self._call("DELETE", path, f"delete {subject}")
        self._call("DELETE", f"{path}?permanent=true", f"purge {subject}")
