"""Assemble the production billing flow from settings and run it with Bytewax recovery.

Real parts only: a ``KafkaSource`` over the Debezium topics (offsets live in the recovery
snapshots; first run starts at the earliest offset), the registry-backed typed edge, the ERP
sink with its outbox relay to Kafka (which also snapshots reconciliation when idle).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import bytewax.connectors.kafka as bytewax_kafka
import structlog
from bytewax.connectors.kafka import KafkaSource
from bytewax.dataflow import Dataflow
from bytewax.inputs import StatefulSourcePartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.run import cli_main
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, create_engine, inspect, literal, select

from billsync.errors import ConfigError
from billsync.settings import Settings, get_settings
from dataflows.billing.mappings import load_mappings
from dataflows.capture import CaptureSource, read_capture
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.cdc.schemas import RegistrySchemaSource
from dataflows.flow import build_flow
from dataflows.progress import PROGRESS
from ops.run.gctune import tune_gc
from ops.topics import admin as topic_admin
from schemas.registry import TOPICS
from sinks.erp import writer_lock
from sinks.erp.sink import ErpSink
from sinks.erp.tables import erp_billing_transactions
from sinks.kafka.outbox import OutboxRelay
from sinks.kafka.producer import CheckedProducer

log = structlog.get_logger(__name__)


class _WatchedPartition(StatefulSourcePartition[Any, Any]):
    """A Kafka partition that reports each epoch close (its snapshot) to the stall watchdog."""

    def __init__(self, inner: StatefulSourcePartition[Any, Any]) -> None:
        self._inner = inner

    def next_batch(self) -> Any:
        return self._inner.next_batch()

    def next_awake(self) -> Any:
        return self._inner.next_awake()

    def snapshot(self) -> Any:
        PROGRESS.epoch()
        return self._inner.snapshot()

    def close(self) -> None:
        self._inner.close()


# consumer properties the flow passes to its source that an admin client does not take
CONSUMER_ONLY = frozenset({"auto.offset.reset"})


class _WatchedKafkaSource(KafkaSource):
    """Bytewax's KafkaSource; its partitions tell the watchdog when epochs close, so a
    dataflow whose epochs stop advancing is detected even with no record waiting."""

    def build_part(self, step_id: str, for_part: str, resume_state: Any) -> Any:
        return _WatchedPartition(super().build_part(step_id, for_part, resume_state))

    def list_parts(self) -> list[str]:
        """Bytewax 0.21's own listing, with an AdminClient made without the consumer-only
        properties of ``add_config``: librdkafka logged a CONFWARN per worker at every start
        for the consumers' ``auto.offset.reset``. Nothing shared is changed (worker threads
        build their partitions' consumers from ``add_config`` meanwhile)."""
        # Bytewax's attributes and helper (0.21.1, pinned)
        config: dict[str, str | int | float | bool] = {"bootstrap.servers": ",".join(self._brokers)}
        config.update((k, v) for k, v in self._add_config.items() if k not in CONSUMER_ONLY)
        return list(bytewax_kafka._list_parts(AdminClient(config), self._topics))


def recovery_dir(settings: Settings) -> Path:
    return settings.recovery_dir or settings.stack_dir / "recovery"


def recovery_store_exists(path: Path) -> bool:
    return any(path.glob("part-*.sqlite3"))


def erp_holds_postings(engine: Engine) -> bool:
    """The ERP ledger has at least one entry (a missing table is an empty ERP)."""
    if not inspect(engine).has_table(erp_billing_transactions.name):
        return False
    with engine.connect() as conn:
        query = select(literal(1)).select_from(erp_billing_transactions).limit(1)
        return conn.execute(query).first() is not None


def recovery_missing(path: Path) -> ConfigError:
    """The Kafka run's store is gone while the ERP holds postings."""
    return ConfigError(
        f"the recovery store {path} is missing while the ERP already holds postings: the "
        "flow would start with no state, from the beginning of the CDC topics, into an ERP "
        "that billed from that state",
        field="BILLSYNC_RECOVERY_DIR",
        fix="point BILLSYNC_RECOVERY_DIR at the store (or restore it from its backup); or "
        "rebuild on purpose: `billsync run --rebuild` replays the compacted CDC topics from "
        "their beginning into this ERP (the writer posts only differences), then "
        "`billsync recon audit` must be clean — see ops/README.md, 'Losing the recovery store'",
    )


def file_recovery_missing(path: Path, capture: Path) -> ConfigError:
    """A file run's store is gone while its ERP holds postings."""
    return ConfigError(
        f"the recovery store {path} is missing while the ERP already holds postings: the "
        f"replay of {capture} would start with no state, from the beginning of the file, "
        "into an ERP that billed from that state",
        field="--recovery-dir",
        fix="pass the --recovery-dir of the run that wrote this ERP to resume it; or replay "
        "into a fresh ERP (another --erp-url), or without --recovery-dir (a batch run from "
        "the start of the file: the writer posts only differences)",
    )


def open_recovery(
    path: Path,
    erp_url: str,
    settings: Settings,
    *,
    missing: ConfigError,
    rebuild: bool = False,
) -> RecoveryConfig:
    """The recovery store at ``path``, created once (its partition count,
    ``settings.recovery_partitions``, is fixed forever).

    A missing store is created only when the ERP holds no postings (a first start) or the
    operator asked for a rebuild: otherwise ``missing`` is raised, before anything is read
    or written.
    """
    if not recovery_store_exists(path):
        if not rebuild:
            engine = erp_engine(erp_url)
            try:
                if erp_holds_postings(engine):
                    raise missing
            finally:
                engine.dispose()
        path.mkdir(parents=True, exist_ok=True)
        init_db_dir(path, settings.recovery_partitions)  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated
    backup = settings.recovery_backup_interval_s
    return RecoveryConfig(path, backup_interval=timedelta(seconds=backup))  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated


def prepare_recovery(settings: Settings, *, rebuild: bool = False) -> RecoveryConfig:
    """The Kafka run's recovery store (:func:`recovery_dir`; see :func:`open_recovery`)."""
    path = recovery_dir(settings)
    return open_recovery(
        path,
        settings.require("erp_db_url"),
        settings,
        missing=recovery_missing(path),
        rebuild=rebuild,
    )


def ensure_topics(settings: Settings, topics: Sequence[str]) -> None:
    """Create missing topics and keep the source topics compacted (:mod:`ops.topics.admin`):
    the source topics (so the flow can start before a table has rows) and billsync's
    outputs."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    sources = [t for t in topics if t in settings.input_topics]
    outputs = [t for t in topics if t not in settings.input_topics]
    for change in topic_admin.ensure_topics(admin, settings.kafka_bootstrap, sources, outputs):
        log.info(
            "topic_configured", topic=change.topic, action=change.action, config=dict(change.config)
        )


def erp_engine(url: str) -> Engine:
    return create_engine(url, pool_pre_ping=True)


def refuse_second_writer(erp_url: str) -> None:
    """Refuse at start, before Kafka topics or Bytewax are touched, when another writer holds
    the ERP (:func:`sinks.erp.writer_lock.check`). The sink partition then takes the lock
    for real (``single_writer``) and holds it while the flow runs."""
    engine = erp_engine(erp_url)
    try:
        writer_lock.check(engine)
    finally:
        engine.dispose()


def production_flow(settings: Settings) -> Dataflow:
    erp_url = settings.require("erp_db_url")
    refuse_second_writer(erp_url)
    registry = settings.schema_registry_url
    bootstrap = settings.kafka_bootstrap
    ensure_topics(settings, (*settings.input_topics, *TOPICS))
    source = _WatchedKafkaSource(
        [bootstrap],
        list(settings.input_topics),
        tail=True,
        add_config={"auto.offset.reset": "earliest"},
        raise_on_errors=False,
    )
    return build_flow(
        source,
        decoder=lambda: ChangeDecoder(RegistrySchemaSource(registry)),
        mappings=load_mappings(settings.reference_dir),
        erp_sink=ErpSink(
            lambda: erp_engine(erp_url),
            relay_factory=lambda engine: OutboxRelay(engine, CheckedProducer(bootstrap, registry)),
            recon_every_s=settings.recon_interval_s,
            idle_flush=True,
            retry_for_seconds=settings.erp_retry_s,
            single_writer=True,
            topics=settings.input_topics,
        ),
        segment_dir=recovery_dir(settings) / "finals",
        segment_retention_s=settings.recovery_backup_interval_s,
        compaction=settings.compaction,
        shards=settings.shards,
        topics=settings.input_topics,
    )


def replay_file(
    path: Path,
    erp_url: str,
    *,
    workers: int = 1,
    recovery: Path | None = None,
    snapshot_interval: timedelta | None = None,
    batch: int = 1000,
    uneven: bool = False,
) -> int:
    """Replay a capture through the same flow into ``erp_url`` (SQLite by default); returns
    the number of records in the file.

    No Kafka, no registry: a run that ends at the end of the file. The Kafka-bound records
    stay in the ERP's ``billing_outbox`` table for inspection.

    Without ``recovery`` it is a batch run from the start of the file. With it, the run keeps
    a Bytewax recovery store there (the Kafka run's layout: ``part-*.sqlite3`` and the final
    segments in ``finals/``; :func:`open_recovery`'s refusal of a missing store beside an ERP
    that holds postings), snapshotting every ``snapshot_interval`` (the settings' interval by
    default): a run killed at any moment and started again with the same arguments resumes
    from its last snapshot (the source's state is the position in the file), and one that
    completed does nothing more. ``snapshot_interval`` is also the epoch interval of a run
    without recovery (Bytewax's default when None). ``batch`` and ``uneven``: how the file
    is read (:class:`~dataflows.capture.CaptureSource`).
    """
    tune_gc()  # ops/run/gctune.py
    settings = get_settings()
    schemas, records = read_capture(path)
    refuse_second_writer(erp_url)
    recovery_config = None
    if recovery is not None:
        missing = file_recovery_missing(recovery, path)
        recovery_config = open_recovery(recovery, erp_url, settings, missing=missing)
    flow = build_flow(
        CaptureSource(records, batch, uneven=uneven),
        decoder=lambda: ChangeDecoder(schemas),
        mappings=load_mappings(settings.reference_dir),
        erp_sink=ErpSink(lambda: erp_engine(erp_url), single_writer=True),
        topics=sorted({str(r.topic) for r in records}),
        segment_dir=None if recovery is None else recovery / "finals",
        segment_retention_s=settings.recovery_backup_interval_s,
        compaction=settings.compaction,
        shards=settings.shards,
    )
    interval = snapshot_interval
    if interval is None and recovery is not None:
        interval = timedelta(seconds=settings.snapshot_interval_s)
    cli_main(  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated
        flow,
        workers_per_process=workers,
        epoch_interval=interval,
        recovery_config=recovery_config,
    )
    return len(records)
