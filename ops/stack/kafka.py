"""Apache Kafka 4.x (KRaft, combined broker+controller, one node) and a Kafka Connect worker.

Both run from the Maven-collected classpath (``<dist>/lib``) on Java 17. Connect is a
distributed worker with Debezium and the Apicurio converter on its plugin path, and the
``env`` config provider so connector configs name passwords as ``${env:NAME}``.
"""

from __future__ import annotations

import base64
import os
import subprocess
import uuid
from pathlib import Path
from typing import ClassVar

import httpx

from billsync.errors import StackError
from ops.stack import jvm
from ops.stack import topology as t
from ops.stack.component import Component, Launch

KAFKA_PATTERN = "[%d] %p %m (%c)%n"
CONNECT_PATTERN = "[%d] %p %X{connector.context}%m (%c:%L)%n"


def _props(path: Path, values: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(f"{k}={v}\n" for k, v in values.items())
    path.write_text("# written by billsync stack up\n" + body, encoding="utf-8")
    return path


class Kafka(Component):
    name: ClassVar[str] = "kafka"

    @property
    def port(self) -> int:
        return self.ctx.settings.kafka_port

    @property
    def server_properties(self) -> Path:
        return self.ctx.paths.conf / "kafka.properties"

    def _classpath(self) -> str:
        return str(self.ctx.paths.kafka_lib / "*")

    def _write_configs(self) -> None:
        s = self.ctx.settings
        _props(
            self.server_properties,
            {
                "process.roles": "broker,controller",
                "node.id": "1",
                "controller.quorum.bootstrap.servers": f"127.0.0.1:{s.kafka_controller_port}",
                "listeners": (
                    f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:"
                    f"{s.kafka_controller_port}"
                ),
                "advertised.listeners": (
                    f"PLAINTEXT://127.0.0.1:{s.kafka_port},CONTROLLER://127.0.0.1:"
                    f"{s.kafka_controller_port}"
                ),
                "controller.listener.names": "CONTROLLER",
                "inter.broker.listener.name": "PLAINTEXT",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "log.dirs": str(self.data_dir),
                "offsets.topic.replication.factor": "1",
                "transaction.state.log.replication.factor": "1",
                "transaction.state.log.min.isr": "1",
                "share.coordinator.state.topic.replication.factor": "1",
                "share.coordinator.state.topic.min.isr": "1",
                "default.replication.factor": "1",
                "num.partitions": "1",
                "auto.create.topics.enable": "true",
                "group.initial.rebalance.delay.ms": "0",
                "num.network.threads": "2",
                "num.io.threads": "2",
                "num.recovery.threads.per.data.dir": "1",
                "log.retention.hours": "168",
            },
        )
        jvm.log4j2_console(
            self.ctx.paths.conf / "log4j2-kafka.properties",
            pattern=KAFKA_PATTERN,
            quiet={"kafka.request.logger": "warn", "state.change.logger": "warn"},
        )

    def prepare(self) -> None:
        self._write_configs()
        if (self.data_dir / "meta.properties").exists():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        result = subprocess.run(  # noqa: S603  # fixed argv
            [
                str(jvm.JAVA17),
                "-Xmx256m",
                f"-Dlog4j2.configurationFile={self.ctx.paths.conf / 'log4j2-kafka.properties'}",
                "-cp",
                self._classpath(),
                "kafka.tools.StorageTool",
                "format",
                "--standalone",
                "--cluster-id",
                cluster_id,
                "--config",
                str(self.server_properties),
                "--ignore-formatted",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a", encoding="utf-8") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            raise StackError(
                self.name,
                f"storage format failed: {result.stderr.strip()[-300:]}",
                str(self.log_file),
            )

    def launch(self) -> Launch:
        conf = self.ctx.paths.conf
        return Launch(
            argv=[
                str(jvm.JAVA17),
                *jvm.heap(self.ctx.settings.kafka_heap),
                *jvm.PERFORMANCE_OPTS,
                f"-Dkafka.logs.dir={self.ctx.paths.logs}",
                f"-Dlog4j2.configurationFile={conf / 'log4j2-kafka.properties'}",
                "-cp",
                self._classpath(),
                "kafka.Kafka",
                str(self.server_properties),
            ]
        )

    def check(self) -> str | None:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {
                "bootstrap.servers": f"127.0.0.1:{self.port}",
                "socket.timeout.ms": 3000,
                "log_level": 0,  # refused connections while starting are expected, not news
            }
        )
        try:
            metadata = admin.list_topics(timeout=3)
        except Exception as exc:  # confluent_kafka raises KafkaException with varying payloads
            return f"metadata request to 127.0.0.1:{self.port} failed: {exc}"
        if not metadata.brokers:
            return "metadata lists no broker"
        return None


class Connect(Component):
    name: ClassVar[str] = "connect"
    start_timeout: ClassVar[float] = 240.0

    @property
    def port(self) -> int:
        return self.ctx.settings.connect_port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def worker_properties(self) -> Path:
        return self.ctx.paths.conf / "connect.properties"

    def prepare(self) -> None:
        s = self.ctx.settings
        self.data_dir.mkdir(parents=True, exist_ok=True)
        _props(
            self.worker_properties,
            {
                "bootstrap.servers": f"127.0.0.1:{s.kafka_port}",
                "group.id": t.CONNECT_GROUP_ID,
                "config.storage.topic": t.CONNECT_CONFIG_TOPIC,
                "offset.storage.topic": t.CONNECT_OFFSET_TOPIC,
                "status.storage.topic": t.CONNECT_STATUS_TOPIC,
                "config.storage.replication.factor": "1",
                "offset.storage.replication.factor": "1",
                "status.storage.replication.factor": "1",
                "offset.storage.partitions": "1",
                "status.storage.partitions": "1",
                "offset.flush.interval.ms": "5000",
                "key.converter": "org.apache.kafka.connect.json.JsonConverter",
                "value.converter": "org.apache.kafka.connect.json.JsonConverter",
                "key.converter.schemas.enable": "false",
                "value.converter.schemas.enable": "false",
                "listeners": f"http://127.0.0.1:{s.connect_port}",
                "rest.advertised.host.name": "127.0.0.1",
                "rest.advertised.port": str(s.connect_port),
                "plugin.path": str(self.ctx.paths.plugins),
                "plugin.discovery": "hybrid_warn",
                "config.providers": "env",
                "config.providers.env.class": t.CONFIG_PROVIDER_CLASS,
            },
        )
        jvm.log4j2_console(
            self.ctx.paths.conf / "log4j2-connect.properties",
            pattern=CONNECT_PATTERN,
            quiet={
                "org.apache.kafka.clients": "warn",
                "org.reflections": "error",
                "org.apache.kafka.connect.runtime.isolation": "warn",
            },
        )

    def launch(self) -> Launch:
        conf = self.ctx.paths.conf
        env = dict(os.environ)
        env[t.DEBEZIUM_PSA_PASSWORD_ENV] = self.ctx.passwords[t.PSA_DEBEZIUM]
        env[t.DEBEZIUM_CRM_PASSWORD_ENV] = self.ctx.passwords[t.CRM_DEBEZIUM]
        env[t.DEBEZIUM_ERP_PASSWORD_ENV] = self.ctx.passwords[t.ERP_DEBEZIUM]
        return Launch(
            argv=[
                str(jvm.JAVA17),
                *jvm.heap(self.ctx.settings.connect_heap),
                *jvm.PERFORMANCE_OPTS,
                f"-Dkafka.logs.dir={self.ctx.paths.logs}",
                f"-Dlog4j2.configurationFile={conf / 'log4j2-connect.properties'}",
                "-cp",
                str(self.ctx.paths.kafka_lib / "*"),
                "org.apache.kafka.connect.cli.ConnectDistributed",
                str(self.worker_properties),
            ],
            env=env,
            cwd=self.data_dir,
        )

    def check(self) -> str | None:
        try:
            health = httpx.get(f"{self.url}/health", timeout=3)
            if health.status_code != 200:
                return f"GET /health -> {health.status_code} {health.text[:120]}"
            plugins = httpx.get(f"{self.url}/connector-plugins", timeout=5).json()
        except (httpx.HTTPError, ValueError) as exc:
            return f"REST {self.url} not answering: {exc}"
        listed = {p.get("class") for p in plugins}
        missing = [p for p in t.DEBEZIUM_PLUGINS if p not in listed]
        if missing:
            return f"plugins missing from /connector-plugins: {', '.join(missing)}"
        return None
