"""billsync's own rules for a Debezium connector configuration (on top of Connect's validation).

Every rule returns :class:`Violation` values that name the field and the fix. The rules are
pure functions of the rendered configuration, so they run without any service.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from billsync.change import SUFFIX
from billsync.model import ROW_TYPES
from connectors.compaction import creation_problems

AVRO_CONVERTER = "io.apicurio.registry.utils.converter.AvroConverter"
POSTGRES_CLASS = "io.debezium.connector.postgresql.PostgresConnector"
MARIADB_CLASS = "io.debezium.connector.mariadb.MariaDbConnector"
MYSQL_CLASS = "io.debezium.connector.mysql.MySqlConnector"
BINLOG_CLASSES = (MARIADB_CLASS, MYSQL_CLASS)
SUPPORTED_CLASSES = (POSTGRES_CLASS, *BINLOG_CLASSES)
SIGNAL_TABLE = "debezium_signal"
# time.precision.mode values whose encodings the CDC edge decodes (dataflows/cdc/convert.py)
TIME_PRECISION_MODES = ("adaptive_time_microseconds", "adaptive", "connect")

_SECRET_KEY = re.compile(r"password|secret", re.IGNORECASE)
# a Connect config provider reference: ${provider:key} or ${provider:path:key}
_PROVIDER_REF = re.compile(r"^\$\{[A-Za-z0-9_.-]+:[^{}]+\}$")
_LEFTOVER_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")


@dataclass(frozen=True)
class Violation:
    """One refused setting: which field, what is wrong, how to fix it."""

    field: str
    problem: str
    fix: str
    origin: str = "billsync"  # "billsync" (these rules) or "connect" (Connect's validate)


def _required(config: Mapping[str, str]) -> Iterable[tuple[str, str]]:
    """(field, why) pairs every connector needs, by connector class."""
    common = [
        ("connector.class", "the Debezium connector class"),
        ("topic.prefix", "topics are named <topic.prefix>.<schema-or-db>.<table>"),
        ("database.hostname", "the source database host"),
        ("database.port", "the source database port"),
        ("database.user", "the Debezium database user"),
        ("database.password", "a ${env:...} or ${file:...} reference to the password"),
        ("table.include.list", "the contract tables and the signal table"),
        ("snapshot.mode", "initial: snapshot the tables, then stream"),
        ("signal.data.collection", "the signal table for incremental snapshots"),
        ("heartbeat.interval.ms", "keeps offsets (PostgreSQL slot) moving on idle tables"),
        ("decimal.handling.mode", "precise: decimals as Avro decimal, never double"),
        ("time.precision.mode", "how dates and timestamps are encoded for the edge"),
        ("tombstones.on.delete", "true: a delete is followed by a tombstone for compaction"),
        ("key.converter", AVRO_CONVERTER),
        ("value.converter", AVRO_CONVERTER),
    ]
    cls = config.get("connector.class", "")
    if cls == POSTGRES_CLASS:
        common += [
            ("database.dbname", "the PostgreSQL database"),
            ("plugin.name", "pgoutput (built into PostgreSQL)"),
            ("slot.name", "a replication slot owned by this connector alone"),
            ("publication.name", "the publication created with the stack"),
            ("heartbeat.action.query", "writes WAL on idle databases so the slot advances"),
        ]
    elif cls in BINLOG_CLASSES:
        common += [
            ("database.server.id", "a binlog client id unique among all replication clients"),
            ("database.include.list", "the CRM database"),
            ("schema.history.internal.kafka.topic", "where the connector keeps table DDL"),
            ("schema.history.internal.kafka.bootstrap.servers", "the broker of that topic"),
        ]
    return common


def check_required(config: Mapping[str, str]) -> list[Violation]:
    return [
        Violation(field, "required field is missing or empty", f"set {field}: {why}")
        for field, why in _required(config)
        if not config.get(field, "").strip()
    ]


def check_class(config: Mapping[str, str]) -> list[Violation]:
    cls = config.get("connector.class", "")
    if cls and cls not in SUPPORTED_CLASSES:
        return [
            Violation(
                "connector.class",
                f"{cls} is not a connector the CDC edge decodes",
                f"use one of {', '.join(SUPPORTED_CLASSES)}",
            )
        ]
    return []


def check_prefix(name: str, config: Mapping[str, str]) -> list[Violation]:
    prefix = config.get("topic.prefix", "")
    if prefix and prefix != name:
        return [
            Violation(
                "topic.prefix",
                f"topic.prefix is {prefix!r} but the template is named {name!r}",
                f'set "topic.prefix": "{name}" or rename the file to {prefix}.json',
            )
        ]
    return []


def check_converters(config: Mapping[str, str]) -> list[Violation]:
    out: list[Violation] = []
    for side in ("key", "value"):
        field = f"{side}.converter"
        value = config.get(field, "")
        if value and value != AVRO_CONVERTER:
            out.append(
                Violation(
                    field,
                    f"{value} does not write Avro in the Confluent wire format",
                    f'set "{field}": "{AVRO_CONVERTER}"',
                )
            )
        url_field = f"{field}.apicurio.registry.url"
        url = config.get(url_field, "")
        if not url.startswith(("http://", "https://")):
            out.append(
                Violation(
                    url_field,
                    "the Avro converter has no registry URL" if not url else f"{url!r} is no URL",
                    f'set "{url_field}": "{{{{registry_url}}}}"',
                )
            )
    return out


def check_decimals(config: Mapping[str, str]) -> list[Violation]:
    mode = config.get("decimal.handling.mode", "")
    if mode and mode != "precise":
        return [
            Violation(
                "decimal.handling.mode",
                f"{mode!r} loses exactness of money (double) or types (string)",
                'set "decimal.handling.mode": "precise" (Avro decimal with the column scale)',
            )
        ]
    return []


def check_time_precision(config: Mapping[str, str]) -> list[Violation]:
    mode = config.get("time.precision.mode", "")
    if mode and mode not in TIME_PRECISION_MODES:
        return [
            Violation(
                "time.precision.mode",
                f"{mode!r} is not an encoding the CDC edge decodes",
                'set "time.precision.mode": "adaptive_time_microseconds"',
            )
        ]
    return []


def check_heartbeat(config: Mapping[str, str]) -> list[Violation]:
    value = config.get("heartbeat.interval.ms", "")
    if value and (not value.isdigit() or int(value) <= 0):
        return [
            Violation(
                "heartbeat.interval.ms",
                f"{value!r} disables the heartbeat",
                'set "heartbeat.interval.ms": "10000" (a positive number of milliseconds)',
            )
        ]
    return []


def check_tombstones_and_snapshot(config: Mapping[str, str]) -> list[Violation]:
    out: list[Violation] = []
    if config.get("tombstones.on.delete", "true").lower() != "true":
        out.append(
            Violation(
                "tombstones.on.delete",
                "deletes would leave their last value in compacted topics",
                'set "tombstones.on.delete": "true"',
            )
        )
    if config.get("connector.class") == POSTGRES_CLASS and config.get("plugin.name", "") not in (
        "",
        "pgoutput",
    ):
        out.append(
            Violation(
                "plugin.name",
                f"{config['plugin.name']!r} needs a server extension the stack does not have",
                'set "plugin.name": "pgoutput"',
            )
        )
    return out


def check_transaction_metadata(config: Mapping[str, str]) -> list[Violation]:
    """The flow applies each source transaction whole and in commit order (SPEC 4) from
    Debezium's transaction metadata: BEGIN/END records on ``<topic.prefix>.transaction`` and
    a ``transaction`` block on every change (``dataflows/cdc/transaction.py``)."""
    out: list[Violation] = []
    if config.get("provide.transaction.metadata", "").strip().lower() != "true":
        out.append(
            Violation(
                "provide.transaction.metadata",
                "without transaction metadata the flow cannot tell where a source transaction "
                "ends, so it could apply half of one",
                'set "provide.transaction.metadata": "true"',
            )
        )
    topic = config.get("topic.transaction", SUFFIX)
    if topic != SUFFIX:
        out.append(
            Violation(
                "topic.transaction",
                f"{topic!r}: the flow reads the transaction topic <topic.prefix>.{SUFFIX}",
                'remove "topic.transaction" (Debezium\'s default is "transaction")',
            )
        )
    return out


def check_topic_creation(config: Mapping[str, str]) -> list[Violation]:
    """Table topics are created compacted, the heartbeat topic is not (see compaction.py)."""
    return [Violation(field, problem, fix) for field, problem, fix in creation_problems(config)]


def check_secrets(config: Mapping[str, str]) -> list[Violation]:
    """Every *password* / *secret* key must be a ``${provider:...}`` reference, never a literal."""
    return [
        Violation(
            key,
            "literal secret in a connector configuration (it would be stored in Connect's "
            "config topic and in git)",
            f'use a config provider reference, e.g. "{key}": '
            '"${env:BILLSYNC_DEBEZIUM_<SOURCE>_PASSWORD}" (or ${file:/path:key})',
        )
        for key, value in config.items()
        if _SECRET_KEY.search(key) and value and not _PROVIDER_REF.match(value)
    ]


def check_tables(config: Mapping[str, str]) -> list[Violation]:
    """Only contract tables (billsync.model.ROW_TYPES) and the signal table are captured."""
    include = [t.strip() for t in config.get("table.include.list", "").split(",") if t.strip()]
    if not include:
        return []
    known = sorted(ROW_TYPES)
    out: list[Violation] = []
    for entry in include:
        schema, _, table = entry.rpartition(".")
        if not schema:
            out.append(
                Violation(
                    "table.include.list",
                    f"{entry!r} is not qualified",
                    "write <schema>.<table> (PostgreSQL) or <database>.<table> (MariaDB)",
                )
            )
        elif table not in ROW_TYPES and table != SIGNAL_TABLE:
            out.append(
                Violation(
                    "table.include.list",
                    f"unknown table {entry!r}: not a contract table of SPEC section 1",
                    f"capture only {', '.join(known)} and {SIGNAL_TABLE}",
                )
            )
    signal = config.get("signal.data.collection", "")
    if signal and signal not in include:
        out.append(
            Violation(
                "table.include.list",
                f"the signal table {signal} is not captured, so signals are never read",
                f"add {signal} to table.include.list",
            )
        )
    return out


def check_placeholders(config: Mapping[str, str]) -> list[Violation]:
    return [
        Violation(key, f"unrendered placeholder in {value!r}", "render the template first")
        for key, value in config.items()
        if _LEFTOVER_PLACEHOLDER.search(value)
    ]


def check_unique(
    name: str, config: Mapping[str, str], others: Mapping[str, Mapping[str, str]]
) -> list[Violation]:
    """slot.name and database.server.id must not be shared with another template."""
    out: list[Violation] = []
    for field in ("slot.name", "database.server.id"):
        value = config.get(field)
        if not value:
            continue
        clash = [o for o, cfg in others.items() if o != name and cfg.get(field) == value]
        if clash:
            out.append(
                Violation(
                    field,
                    f"{field}={value} is also used by {', '.join(sorted(clash))}",
                    f"give {name} its own {field}",
                )
            )
    return out


def check(
    name: str, config: Mapping[str, str], others: Mapping[str, Mapping[str, str]] | None = None
) -> list[Violation]:
    """All of billsync's rules for the rendered configuration of connector ``name``."""
    return [
        *check_placeholders(config),
        *check_required(config),
        *check_class(config),
        *check_prefix(name, config),
        *check_converters(config),
        *check_decimals(config),
        *check_time_precision(config),
        *check_heartbeat(config),
        *check_tombstones_and_snapshot(config),
        *check_transaction_metadata(config),
        *check_topic_creation(config),
        *check_secrets(config),
        *check_tables(config),
        *check_unique(name, config, others or {}),
    ]
