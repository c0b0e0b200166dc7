"""The facts the local stack and docker-compose.yml share: components, ports, databases, users.

The launcher (ops/stack/) builds its configs from these values, and
tests/unit/test_compose.py checks docker-compose.yml against them, so the two topologies
cannot drift apart silently. Ports here are the defaults; each is a setting (billsync/settings.py).
"""

from __future__ import annotations

from typing import Final

from schemas.client import REGISTRY_V2_PATH
from sinks.erp import migrate

# --- components, in start order -------------------------------------------------------------
COMPONENTS: Final = ("postgres", "mariadb", "kafka", "apicurio", "connect")

# compose service name of each component
COMPOSE_SERVICES: Final = {
    "postgres": "postgres",
    "mariadb": "mariadb",
    "kafka": "kafka",
    "apicurio": "apicurio",
    "connect": "connect",
}

# --- default ports (settings field -> port) ----------------------------------------------------
DEFAULT_PORTS: Final = {
    "pg_port": 5433,
    "mariadb_port": 3307,
    "kafka_port": 9092,
    "kafka_controller_port": 9093,
    "connect_port": 8083,
    "apicurio_port": 8081,
    "apicurio_management_port": 9001,
}

# host ports each compose service must publish (container ports may differ)
COMPOSE_HOST_PORTS: Final = {
    "postgres": ("pg_port",),
    "mariadb": ("mariadb_port",),
    "kafka": ("kafka_port",),
    "connect": ("connect_port",),
    "apicurio": ("apicurio_port",),
}

# Tables of facts below (a name and a value a line) look alike to a duplicate scan; they
# repeat a shape, not logic.
# --- versions ----------------------------------------------------------------------------------
VERSIONS: Final = {
    "postgresql": "15",
    "mariadb": "10.11",
    "kafka": "4.3.1",
    "debezium_postgres": "3.6.1.Final",
    "debezium_mariadb": "3.5.0.Final",
    "apicurio_registry": "3.3.3",
    "apicurio_converter": "2.6.13.Final",
}

# --- PostgreSQL: databases, roles, server settings -----------------------------------------
PSA_DB: Final = "psa"
ERP_DB: Final = "erp"
PSA_OWNER: Final = "psa_owner"
PSA_DEBEZIUM: Final = "debezium_psa"
ERP_APP: Final = "erp_app"
PSA_PUBLICATION: Final = "billsync_psa"
# the erp connector captures accounting_periods (SPEC 2b). Its publication names the tables
# (not FOR ALL TABLES: the ledger's writes would all be decoded for nothing), so it is created
# by the tables' owner erp_app once they exist: `billsync db init` (ops/sourcedb/install.py)
ERP_DEBEZIUM: Final = migrate.ERP_DEBEZIUM  # one name for the stack and the ERP schema
ERP_PUBLICATION: Final = migrate.ERP_PUBLICATION

PG_SERVER_SETTINGS: Final = {
    "wal_level": "logical",
    "max_wal_senders": "10",
    "max_replication_slots": "20",
    # a stopped connector's slot must not fill the disk: cap retained WAL per slot
    "max_slot_wal_keep_size": "2GB",
    # commit times of every transaction (pg_xact_commit_timestamp): `bench e2e` measures
    # PSA commit to ERP commit on this one server clock; costs 10 bytes per transaction
    "track_commit_timestamp": "on",
}

# --- MariaDB: database, users, server settings ---------------------------------------------
CRM_DB: Final = "crm"
CRM_OWNER: Final = "crm_owner"
CRM_DEBEZIUM: Final = "debezium_crm"
CRM_DEBEZIUM_GRANTS: Final = (
    "SELECT",
    "RELOAD",
    "SHOW DATABASES",
    "REPLICATION SLAVE",
    "REPLICATION CLIENT",
)

MARIADB_SERVER_SETTINGS: Final = {
    "server_id": "1",
    "log_bin": "mariadb-bin",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_expire_logs_seconds": "259200",
    "log_bin_compress": "OFF",
    "gtid_strict_mode": "ON",
}

# --- Kafka Connect ---------------------------------------------------------------------------
CONNECT_GROUP_ID: Final = "billsync-connect"
CONNECT_CONFIG_TOPIC: Final = "_connect-configs"
CONNECT_OFFSET_TOPIC: Final = "_connect-offsets"
CONNECT_STATUS_TOPIC: Final = "_connect-status"
POSTGRES_CONNECTOR_CLASS: Final = "io.debezium.connector.postgresql.PostgresConnector"
MARIADB_CONNECTOR_CLASS: Final = "io.debezium.connector.mariadb.MariaDbConnector"
DEBEZIUM_PLUGINS: Final = (POSTGRES_CONNECTOR_CLASS, MARIADB_CONNECTOR_CLASS)
AVRO_CONVERTER_CLASS: Final = "io.apicurio.registry.utils.converter.AvroConverter"
# environment variables of the Connect worker that carry the Debezium passwords; connector
# configs refer to them as ${env:NAME} through the worker's EnvVarConfigProvider
DEBEZIUM_PSA_PASSWORD_ENV: Final = "BILLSYNC_DEBEZIUM_PSA_PASSWORD"  # noqa: S105  # a variable name, not a password
DEBEZIUM_CRM_PASSWORD_ENV: Final = "BILLSYNC_DEBEZIUM_CRM_PASSWORD"  # noqa: S105  # a variable name, not a password
DEBEZIUM_ERP_PASSWORD_ENV: Final = "BILLSYNC_DEBEZIUM_ERP_PASSWORD"  # noqa: S105  # a variable name, not a password
CONFIG_PROVIDER_CLASS: Final = "org.apache.kafka.common.config.provider.EnvVarConfigProvider"

# --- Apicurio Registry ----------------------------------------------------------------------
CCOMPAT_PATH: Final = "/apis/ccompat/v7"
# the converter (2.6.x, see ops/stack/converter-pom.xml) speaks the v2 API


def avro_converter_config(registry_base_url: str, prefix: str) -> dict[str, str]:
    """Connector settings for the Apicurio Avro converter writing the Confluent wire format.

    ``prefix`` is ``"key.converter"`` or ``"value.converter"``; ``registry_base_url`` is the
    registry root, e.g. ``http://127.0.0.1:8081``.
    """
    return {
        prefix: AVRO_CONVERTER_CLASS,
        f"{prefix}.apicurio.registry.url": registry_base_url.rstrip("/") + REGISTRY_V2_PATH,
        f"{prefix}.apicurio.registry.auto-register": "true",
        f"{prefix}.apicurio.registry.find-latest": "true",
        # magic byte 0 + 4-byte id in the payload, no Kafka headers
        f"{prefix}.apicurio.registry.as-confluent": "true",
        f"{prefix}.apicurio.registry.headers.enabled": "false",
        # the id written is the contentId: what the ccompat API calls the schema id
        f"{prefix}.apicurio.registry.use-id": "contentId",
        # cache each schema's id for a day, not 30 s: a schema's contentId never changes (a
        # new column is new content, looked up at once), and every re-check is a registry
        # POST per schema per task — the requests seen answered-but-never-received
        # (ARCHITECTURE.md section 6)
        f"{prefix}.apicurio.registry.check-period-ms": "86400000",
    }
