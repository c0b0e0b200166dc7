"""Apicurio Registry 3.x (Quarkus fast-jar from Maven Central) as the schema registry.

Clients use its Confluent-compatible API at ``/apis/ccompat/v7``; the Connect converter uses
``/apis/registry/v2``. Storage is an H2 database *file* under the stack's data dir, so schema
ids survive a restart (Kafka topics keep referring to them). Health lives on the management port.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import httpx

from billsync.errors import StackError
from ops.stack import jvm
from ops.stack import topology as t
from ops.stack.component import Component, Launch

# Quarkus access-log fields (replacing Apicurio's own pattern, which has no bytes and no
# time): client, time, request line, status, bytes sent, milliseconds (needs
# record-request-start-time), the request's Upgrade / Connection headers, the client, and the
# artifact a v2 ``POST .../artifacts`` creates (its id is a header, not in the path): which
# schema each of a connector's POSTs was (tests/soak/test_registry_hang_rate.py)
ACCESS_LOG_PATTERN = (
    '%h %t "%r" %s %b %Dms upgrade=%{i,Upgrade} connection=%{i,Connection} '
    'agent="%{i,User-Agent}" artifact=%{i,X-Registry-ArtifactId}'
)


class Apicurio(Component):
    name: ClassVar[str] = "apicurio"

    @property
    def port(self) -> int:
        return self.ctx.settings.apicurio_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run_jar(self) -> Path:
        home = self.ctx.paths.apicurio_home
        for candidate in (home / "quarkus-run.jar", home / "quarkus-app" / "quarkus-run.jar"):
            if candidate.exists():
                return candidate
        raise StackError(
            self.name, f"quarkus-run.jar not found under {home}; run `billsync stack install`"
        )

    def prepare(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._run_jar()
        if not jvm.JAVA25.exists():
            raise StackError(self.name, f"{jvm.JAVA25} not found (Apicurio 3.3 needs Java 21+)")

    def launch(self) -> Launch:
        s = self.ctx.settings
        props = {
            "quarkus.http.host": "127.0.0.1",
            "quarkus.http.port": str(s.apicurio_port),
            "quarkus.management.host": "127.0.0.1",
            "quarkus.management.port": str(s.apicurio_management_port),
            "apicurio.storage.kind": "sql",
            "apicurio.storage.sql.kind": "h2",
            "apicurio.datasource.url": f"jdbc:h2:file:{self.data_dir / 'registry'}",
            # tests and `billsync schemas` may delete their throwaway subjects
            "apicurio.rest.deletion.artifact.enabled": "true",
            "apicurio.rest.deletion.artifact-version.enabled": "true",
            "apicurio.rest.deletion.group.enabled": "true",
            "quarkus.log.console.format": "%d{HH:mm:ss,SSS} %-5p [%c{2.}] %s%e%n",
            # issue 12: the access log is written when the response is done (the audit log
            # before the body is), with the bytes sent and the time taken: a request the
            # client never got an answer to shows which side it stopped on
            "quarkus.http.access-log.enabled": "true",
            "quarkus.http.access-log.pattern": ACCESS_LOG_PATTERN,
            "quarkus.http.record-request-start-time": "true",
        }
        return Launch(
            argv=[
                str(jvm.JAVA25),
                *jvm.heap(s.apicurio_heap),
                "-XX:+ExitOnOutOfMemoryError",
                *(f"-D{k}={v}" for k, v in props.items()),
                "-jar",
                str(self._run_jar()),
            ],
            cwd=self.data_dir,
        )

    def check(self) -> str | None:
        mgmt = f"http://127.0.0.1:{self.ctx.settings.apicurio_management_port}/health/ready"
        try:
            ready = httpx.get(mgmt, timeout=3)
            if ready.status_code != 200:
                return f"GET {mgmt} -> {ready.status_code}"
            subjects = httpx.get(f"{self.url}{t.CCOMPAT_PATH}/subjects", timeout=3)
            if subjects.status_code != 200:
                return f"GET ccompat /subjects -> {subjects.status_code}"
        except httpx.HTTPError as exc:
            return f"not answering on {self.url}: {exc}"
        return None
