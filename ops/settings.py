"""The one settings object of a billsync process.

Only this module reads the environment. Values come, in order of precedence, from:
1. the process environment (``BILLSYNC_*``, plus the six connection names of SPEC section 5:
   ``PSA_DB_URL``, ``CRM_DB_URL``, ``ERP_DB_URL``, ``KAFKA_BOOTSTRAP``, ``SCHEMA_REGISTRY_URL``,
   ``CONNECT_URL``);
2. ``<stack_dir>/stack.env``, written by ``billsync stack up`` for the local stack;
3. the defaults below (the local stack's ports on 127.0.0.1).

Secrets (database URLs carry passwords) are ``SecretStr``: they never print in a repr or a log.
The object is frozen; unknown ``BILLSYNC_*`` names are refused (``extra="forbid"``).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "BILLSYNC_"


def _alias(name: str) -> AliasChoices:
    return AliasChoices(name, ENV_PREFIX + name)


class Settings(BaseSettings):
    """Every tunable of billsync. See the README's configuration table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        env_file_encoding="utf-8",
        populate_by_name=True,
    )

    # --- where the local stack keeps its state -----------------------------------------
    stack_dir: Path = Path(".stack")

    # --- the local stack (ops/stack/): ports on 127.0.0.1, download cache, JVM heaps ---------
    # The connection settings below default to these ports; `billsync stack up` writes the
    # matching URLs to <stack_dir>/stack.env.
    pg_port: int = 5433
    mariadb_port: int = 3307
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    connect_port: int = 8083
    apicurio_port: int = 8081
    apicurio_management_port: int = 9001
    # Maven-collected jars (Kafka, Connect, Debezium, Apicurio); outside git, shared by clones.
    stack_dist_dir: Path = Path.home() / ".cache" / "billsync" / "stack-dist"
    kafka_heap: str = "768m"
    connect_heap: str = "1g"
    apicurio_heap: str = "512m"

    # --- connections (SPEC section 5 names) ---------------------------------------------
    psa_db_url: SecretStr | None = Field(default=None, validation_alias=_alias("PSA_DB_URL"))
    crm_db_url: SecretStr | None = Field(default=None, validation_alias=_alias("CRM_DB_URL"))
    erp_db_url: SecretStr | None = Field(default=None, validation_alias=_alias("ERP_DB_URL"))
    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092", validation_alias=_alias("KAFKA_BOOTSTRAP")
    )
    schema_registry_url: str = Field(
        default="http://127.0.0.1:8081/apis/ccompat/v7",
        validation_alias=_alias("SCHEMA_REGISTRY_URL"),
    )
    connect_url: str = Field(
        default="http://127.0.0.1:8083", validation_alias=_alias("CONNECT_URL")
    )

    # --- the billing dataflow (billsync run) ----------------------------------------------
    # Bytewax recovery store: the Kafka offsets and the engine state live in its snapshots.
    recovery_dir: Path | None = None  # default: <stack_dir>/recovery
    recovery_partitions: int = 4  # fixed forever once created: >= the most workers you'll run
    snapshot_interval_s: int = 5  # Bytewax epoch/snapshot interval (whole seconds)
    recovery_backup_interval_s: int = 0  # keep older snapshots this long (off-box backups)
    recon_interval_s: float = 3.0  # recon.snapshots at most this often per changed key
    metrics_port: int = 9464  # Prometheus /metrics and /health on 127.0.0.1; 0 disables
    # exit 75 when records wait and none was decoded this long (ops/watchdog.py); 0: off
    stall_exit_s: float = 120.0
    source_topics: tuple[str, ...] = (
        "psa.public.employees",
        "psa.public.projects",
        "psa.public.timesheets",
        "psa.public.milestones",
        "crm.crm.accounts",
        "crm.crm.contracts",
        "crm.crm.contract_rates",
        "crm.crm.contract_amendments",
        "erp.public.accounting_periods",  # closes and reopens (SPEC 2b), the `erp` connector
    )
    reference_dir: Path | None = None  # default: dataflows/reference (the versioned CSVs)

    # --- connectors (connectors/) ---------------------------------------------------------
    # Database URLs of further Debezium sources, keyed by connector name, for the template
    # placeholders {{NAME.host}}, {{NAME.port}}, {{NAME.database}} (psa and crm come from
    # PSA_DB_URL / CRM_DB_URL). JSON, e.g.
    # BILLSYNC_SOURCE_DB_URLS='{"psa_eu": "postgresql://h:5432/psa"}'.
    source_db_urls: dict[str, SecretStr] = Field(default_factory=dict)

    def require(self, name: str) -> str:
        """The secret value of a connection setting, or a clear error if it is not set."""
        from dataflows.errors import ConfigError

        value = getattr(self, name)
        if value is None:
            env = name.upper()
            raise ConfigError(
                f"{env} is not set",
                field=env,
                fix="start the local stack (`billsync stack up`) or export "
                f"{env} (see `billsync stack env`)",
            )
        return value.get_secret_value() if isinstance(value, SecretStr) else str(value)


def stack_dir_from_env() -> Path:
    """The stack directory before settings exist (to locate ``stack.env``)."""
    return Path(os.environ.get(ENV_PREFIX + "STACK_DIR", ".stack"))


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read once."""
    env_file = stack_dir_from_env() / "stack.env"
    return Settings(_env_file=env_file if env_file.exists() else None)  # type: ignore[call-arg]  # pydantic-settings init kwarg not in the model signature
