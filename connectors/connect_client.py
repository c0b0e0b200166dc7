"""A small typed client of the Kafka Connect REST API (the calls billsync needs, nothing more)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from billsync.errors import StackError

COMPONENT = "kafka-connect"


@dataclass(frozen=True)
class TaskState:
    id: int
    state: str
    worker_id: str = ""
    trace: str | None = None


@dataclass(frozen=True)
class ConnectorState:
    """``GET /connectors/{name}/status``, typed."""

    name: str
    state: str
    worker_id: str = ""
    trace: str | None = None
    tasks: tuple[TaskState, ...] = field(default_factory=tuple)

    @property
    def running(self) -> bool:
        """The connector and at least one task run, and no task is in another state."""
        return (
            self.state == "RUNNING"
            and bool(self.tasks)
            and all(t.state == "RUNNING" for t in self.tasks)
        )

    @property
    def failed(self) -> bool:
        return self.state == "FAILED" or any(t.state == "FAILED" for t in self.tasks)

    def first_trace(self) -> str | None:
        """The first line of the first failure trace (the exception message)."""
        traces = [self.trace, *(t.trace for t in self.tasks)]
        for trace in traces:
            if trace:
                return trace.strip().splitlines()[0]
        return None


@dataclass(frozen=True)
class FieldError:
    """One error reported by Connect's validate endpoint for one field."""

    field: str
    message: str


class ConnectClient:
    """Kafka Connect REST calls. Transport failures become :class:`StackError`."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ConnectClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(
        self, method: str, path: str, *, json: Any = None, ok: tuple[int, ...] = (200,)
    ) -> httpx.Response:
        try:
            response = self._http.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise StackError(
                COMPONENT,
                f"not reachable at {self.base_url} ({exc.__class__.__name__}: {exc}); "
                "start the stack with `billsync stack up` or set CONNECT_URL",
            ) from None
        if response.status_code not in ok:
            raise StackError(
                COMPONENT,
                f"{method} {path} answered {response.status_code}: {_message(response)}",
            )
        return response

    # --- reading ---------------------------------------------------------------------------

    def connectors(self) -> list[str]:
        return sorted(self._call("GET", "/connectors").json())

    def exists(self, name: str) -> bool:
        return self._call("GET", f"/connectors/{_q(name)}", ok=(200, 404)).status_code == 200

    def config(self, name: str) -> dict[str, str] | None:
        r = self._call("GET", f"/connectors/{_q(name)}/config", ok=(200, 404))
        return None if r.status_code == 404 else dict(r.json())

    def status(self, name: str) -> ConnectorState | None:
        r = self._call("GET", f"/connectors/{_q(name)}/status", ok=(200, 404))
        if r.status_code == 404:
            return None
        body = r.json()
        conn = body.get("connector", {})
        tasks = tuple(
            TaskState(
                id=int(t.get("id", 0)),
                state=str(t.get("state", "")),
                worker_id=str(t.get("worker_id", "")),
                trace=t.get("trace"),
            )
            for t in body.get("tasks", [])
        )
        return ConnectorState(
            name=str(body.get("name", name)),
            state=str(conn.get("state", "")),
            worker_id=str(conn.get("worker_id", "")),
            trace=conn.get("trace"),
            tasks=tuple(sorted(tasks, key=lambda t: t.id)),
        )

    def plugins(self) -> list[str]:
        return sorted(p["class"] for p in self._call("GET", "/connector-plugins").json())

    # --- validating and changing -----------------------------------------------------------

    def validate(self, config: Mapping[str, str]) -> list[FieldError]:
        """Connect's own validation: ``PUT /connector-plugins/{class}/config/validate``."""
        cls = config.get("connector.class", "")
        plugin = cls.rsplit(".", 1)[-1]
        r = self._call(
            "PUT", f"/connector-plugins/{_q(plugin)}/config/validate", json=dict(config), ok=(200,)
        )
        out: list[FieldError] = []
        for item in r.json().get("configs", []):
            value = item.get("value") or {}  # Debezium leaves some internal entries null
            for message in value.get("errors") or []:
                out.append(FieldError(field=str(value.get("name", "")), message=message))
        return out

    def put_config(self, name: str, config: Mapping[str, str]) -> bool:
        """Create or update (idempotent). True when the connector was created."""
        r = self._call("PUT", f"/connectors/{_q(name)}/config", json=dict(config), ok=(200, 201))
        return r.status_code == 201

    def restart(self, name: str) -> None:
        self._call(
            "POST",
            f"/connectors/{_q(name)}/restart?includeTasks=true&onlyFailed=false",
            ok=(200, 202, 204),
        )

    def delete(self, name: str) -> bool:
        """Delete; False when there was no such connector."""
        r = self._call("DELETE", f"/connectors/{_q(name)}", ok=(200, 204, 404))
        return r.status_code != 404


def _q(part: str) -> str:
    return quote(part, safe="")


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:500]
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return str(body)[:500]
