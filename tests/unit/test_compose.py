"""docker-compose.yml agrees with the local process stack (ops/stack/topology.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.stack import apicurio
from ops.stack import topology as t

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
PG_INIT = ROOT / "ops/stack/compose/postgres-init.sh"
MARIADB_INIT = ROOT / "ops/stack/compose/mariadb-init.sh"
ENV_EXAMPLE = ROOT / "ops/.env.example"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    return data


def services(compose: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = compose["services"]
    return result


def env_of(compose: dict[str, Any], service: str) -> dict[str, str]:
    return {k: str(v) for k, v in services(compose)[service].get("environment", {}).items()}


def host_ports(compose: dict[str, Any], service: str) -> dict[int, int]:
    """host port -> container port; every published port must be bound to 127.0.0.1."""
    out: dict[int, int] = {}
    for spec in services(compose)[service].get("ports", []):
        host_ip, host, container = str(spec).split(":")
        assert host_ip == "127.0.0.1", f"{service} publishes {spec} beyond loopback"
        out[int(host)] = int(container)
    return out


def test_every_component_is_a_service_plus_billsync(compose: dict[str, Any]) -> None:
    # billsync: the CLI image (tools profile); billsync-run and billsync-heal: supervised
    billsync = {"billsync", "billsync-run", "billsync-heal"}
    assert set(services(compose)) == set(t.COMPOSE_SERVICES.values()) | billsync
    assert set(t.COMPOSE_SERVICES) == set(t.COMPONENTS)
    build = services(compose)["billsync"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).exists()


@pytest.mark.parametrize("component", t.COMPONENTS)
def test_host_ports_match_the_local_stack(compose: dict[str, Any], component: str) -> None:
    published = host_ports(compose, t.COMPOSE_SERVICES[component])
    for field in t.COMPOSE_HOST_PORTS[component]:
        assert t.DEFAULT_PORTS[field] in published, (component, field)


def test_images_are_the_pinned_versions(compose: dict[str, Any]) -> None:
    images = {name: svc.get("image", "") for name, svc in services(compose).items()}
    assert images["postgres"] == f"postgres:{t.VERSIONS['postgresql']}"
    assert images["mariadb"] == f"mariadb:{t.VERSIONS['mariadb']}"
    assert images["kafka"] == f"apache/kafka:{t.VERSIONS['kafka']}"
    assert images["apicurio"] == f"apicurio/apicurio-registry:{t.VERSIONS['apicurio_registry']}"
    assert images["connect"] == f"quay.io/debezium/connect:{t.VERSIONS['debezium_postgres']}"


def test_postgres_server_settings(compose: dict[str, Any]) -> None:
    command = [str(part) for part in services(compose)["postgres"]["command"]]
    for key, value in t.PG_SERVER_SETTINGS.items():
        assert f"{key}={value}" in command, key


def test_postgres_databases_and_roles(compose: dict[str, Any]) -> None:
    script = PG_INIT.read_text(encoding="utf-8")
    assert f"CREATE DATABASE {t.PSA_DB} OWNER {t.PSA_OWNER};" in script
    assert f"CREATE DATABASE {t.ERP_DB} OWNER {t.ERP_APP};" in script
    assert f"CREATE ROLE {t.PSA_DEBEZIUM} WITH LOGIN REPLICATION " in script
    assert f"CREATE ROLE {t.ERP_DEBEZIUM} WITH LOGIN REPLICATION " in script
    assert f"GRANT CONNECT ON DATABASE {t.ERP_DB} TO {t.ERP_DEBEZIUM};" in script
    assert f"CREATE PUBLICATION {t.PSA_PUBLICATION} FOR ALL TABLES;" in script
    assert (
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {t.PSA_OWNER} IN SCHEMA public "
        f"GRANT SELECT ON TABLES TO {t.PSA_DEBEZIUM};"
    ) in script
    mounts = services(compose)["postgres"]["volumes"]
    assert any(m.startswith("./" + str(PG_INIT.relative_to(ROOT))) for m in mounts)


def test_mariadb_binlog_settings(compose: dict[str, Any]) -> None:
    flags = {}
    for part in services(compose)["mariadb"]["command"]:
        key, _, value = str(part).removeprefix("--").partition("=")
        flags[key.replace("-", "_")] = value
    for key, value in t.MARIADB_SERVER_SETTINGS.items():
        assert flags.get(key) == value, key


def test_mariadb_database_and_users(compose: dict[str, Any]) -> None:
    env = env_of(compose, "mariadb")
    assert env["MARIADB_DATABASE"] == t.CRM_DB
    assert env["MARIADB_USER"] == t.CRM_OWNER
    script = MARIADB_INIT.read_text(encoding="utf-8")
    grants = ", ".join(t.CRM_DEBEZIUM_GRANTS)
    assert f"GRANT {grants} ON *.* TO '{t.CRM_DEBEZIUM}'@'%';" in script


def test_connect_worker_matches(compose: dict[str, Any]) -> None:
    env = env_of(compose, "connect")
    assert env["GROUP_ID"] == t.CONNECT_GROUP_ID
    assert env["CONFIG_STORAGE_TOPIC"] == t.CONNECT_CONFIG_TOPIC
    assert env["OFFSET_STORAGE_TOPIC"] == t.CONNECT_OFFSET_TOPIC
    assert env["STATUS_STORAGE_TOPIC"] == t.CONNECT_STATUS_TOPIC
    assert env["CONNECT_CONFIG_PROVIDERS"] == "env"
    assert env["CONNECT_CONFIG_PROVIDERS_ENV_CLASS"] == t.CONFIG_PROVIDER_CLASS
    assert env["ENABLE_APICURIO_CONVERTERS"] == "true"
    assert t.DEBEZIUM_PSA_PASSWORD_ENV in env
    assert t.DEBEZIUM_CRM_PASSWORD_ENV in env
    assert t.DEBEZIUM_ERP_PASSWORD_ENV in env


def test_billsync_service_gets_the_six_connection_settings(compose: dict[str, Any]) -> None:
    env = env_of(compose, "billsync")
    names = {
        "PSA_DB_URL",
        "CRM_DB_URL",
        "ERP_DB_URL",
        "KAFKA_BOOTSTRAP",
        "SCHEMA_REGISTRY_URL",
        "CONNECT_URL",
    }
    assert names <= set(env)
    assert env["SCHEMA_REGISTRY_URL"].endswith(t.CCOMPAT_PATH)
    assert f"{t.PSA_OWNER}:" in env["PSA_DB_URL"] and env["PSA_DB_URL"].endswith(f"/{t.PSA_DB}")
    assert f"{t.CRM_OWNER}:" in env["CRM_DB_URL"] and env["CRM_DB_URL"].endswith(f"/{t.CRM_DB}")
    assert f"{t.ERP_APP}:" in env["ERP_DB_URL"] and env["ERP_DB_URL"].endswith(f"/{t.ERP_DB}")


def test_no_password_is_written_in_the_compose_file(compose: dict[str, Any]) -> None:
    reference = re.compile(r"^\$\{[A-Z_]+(:\?[^}]*)?\}$")
    for name, svc in services(compose).items():
        for key, value in svc.get("environment", {}).items():
            if "PASSWORD" in key:
                assert reference.match(str(value)), f"{name}.{key} is not a ${{VAR}} reference"
            if "_DB_URL" in key:
                password = str(value).split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
                assert reference.match(password), f"{name}.{key} embeds a literal password"


def test_env_example_lists_every_variable_with_placeholders_only() -> None:
    referenced = set(re.findall(r"\$\{([A-Z_]+)", COMPOSE.read_text(encoding="utf-8")))
    example = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    assert referenced == set(example)
    assert set(example.values()) == {"change-me"}


def test_apicurio_access_log_matches(compose: dict[str, Any]) -> None:
    """Issue 12: both topologies log each registry response when it is done, the same way."""
    env = env_of(compose, "apicurio")
    assert env["QUARKUS_HTTP_ACCESS_LOG_ENABLED"] == "true"
    assert env["QUARKUS_HTTP_ACCESS_LOG_PATTERN"] == apicurio.ACCESS_LOG_PATTERN
    assert env["QUARKUS_HTTP_RECORD_REQUEST_START_TIME"] == "true"  # else %D is "-"
