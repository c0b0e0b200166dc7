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
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
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
    # how the billing step writes a new base of its state (after closes, and about once per
    # state-sized number of changes): "fork" — a forked child pickles it while the flow goes
    # on (copy-on-write: about the state's size of memory more than inline while it runs;
    # Linux only, elsewhere inline); "inline" — in the flow's thread, which pauses for the
    # whole pickle
    compaction: Literal["fork", "inline"] = "fork"
    # the billing step in this many shards of contracts (dataflows/sharding.py): each shard
    # evaluates its contracts' items and keeps every row; spread over the workers and
    # processes of `billsync run`. Fixed for a recovery store: changing it needs --rebuild
    shards: int = Field(default=1, ge=1, le=64)
    recon_interval_s: float = 3.0  # recon.snapshots at most this often per changed key
    metrics_port: int = 9464  # Prometheus /metrics and /health on 127.0.0.1; 0 disables
    # One policy for "the flow is not moving" (ops/README.md, "Stalls and ERP outages"):
    # an unreachable ERP is retried this long per batch (the ERP writer), then the flow stops
    # with the database error; the stall watchdog (ops/run/watchdog.py) exits 75 when no epoch
    # closed, or records waited and none was decoded, for stall_exit_s; 0: off. A batch
    # waiting out the ERP holds every epoch, so the watchdog must wait longer than the retry:
    # stall_exit_s > erp_retry_s is enforced (the default leaves 60 s for the last attempt).
    erp_retry_s: float = Field(default=300.0, gt=0)
    stall_exit_s: float = Field(default=360.0, ge=0)
    source_topics: tuple[str, ...] = (
        "psa.public.employees",
        "psa.public.projects",
        "psa.public.timesheets",
        "psa.public.milestones",
        "crm.crm.accounts",
        "crm.crm.contracts",
        "crm.crm.contract_rates",
        "crm.crm.contract_amendments",
    )
    # closes and reopens (SPEC 2b): the `erp` connector's topic of this ERP's schema
    periods_topic: str = "erp.public.accounting_periods"
    # SPEC 4 whole transactions and commit order across a source's tables: read the
    # connectors' transaction topics and apply each source transaction as one unit, in the
    # source's commit order. Off: each change is its own unit, in arrival order across topics.
    transactions: bool = True
    reference_dir: Path | None = None  # default: dataflows/reference (the versioned CSVs)

    # --- connectors (connectors/) ---------------------------------------------------------
    # Database URLs of further Debezium sources, keyed by connector name, for the template
    # placeholders {{NAME.host}}, {{NAME.port}}, {{NAME.database}} (psa and crm come from
    # PSA_DB_URL / CRM_DB_URL). JSON, e.g.
    # BILLSYNC_SOURCE_DB_URLS='{"psa_eu": "postgresql://h:5432/psa"}'.
    source_db_urls: dict[str, SecretStr] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _stall_outlasts_erp_retry(self) -> Settings:
        """Refuse a watchdog that would kill a flow waiting out an ERP outage."""
        from billsync.errors import ConfigError

        if self.stall_exit_s and self.stall_exit_s <= self.erp_retry_s:
            raise ConfigError(
                f"BILLSYNC_STALL_EXIT_S={self.stall_exit_s:g} is not longer than "
                f"BILLSYNC_ERP_RETRY_S={self.erp_retry_s:g}: the stall watchdog would stop a "
                "flow that is waiting out an ERP outage",
                field="BILLSYNC_STALL_EXIT_S",
                fix="set BILLSYNC_STALL_EXIT_S above BILLSYNC_ERP_RETRY_S (e.g. 60 s more), "
                "lower BILLSYNC_ERP_RETRY_S, or 0 to turn the watchdog off",
            )
        return self

    @property
    def transaction_topics(self) -> tuple[str, ...]:
        """The transaction topic (``<topic.prefix>.transaction``, Debezium's BEGIN/END records)
        of every connector the flow reads a table topic of: ``psa``, ``crm`` and ``erp``
        with the defaults. Derived from the table topics' prefixes, in their order."""
        from billsync.change import transaction_topic

        prefixes = [t.rsplit(".", 2)[0] for t in (*self.source_topics, self.periods_topic)]
        return tuple(transaction_topic(p) for p in dict.fromkeys(prefixes))

    @property
    def input_topics(self) -> tuple[str, ...]:
        """Every topic the flow reads: the eight source tables, the period calendar and, with
        ``transactions``, the transaction topics of their connectors."""
        tx = self.transaction_topics if self.transactions else ()
        return (*self.source_topics, self.periods_topic, *tx)

    def require(self, name: str) -> str:
        """The secret value of a connection setting, or a clear error if it is not set."""
        from billsync.errors import ConfigError

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
