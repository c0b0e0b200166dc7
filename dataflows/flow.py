"""The billing dataflow factory: sources and sinks in, a Bytewax ``Dataflow`` out.

Data path (see ARCHITECTURE.md)::

    cdc_in ─► decode ─► changes, tx markers, dead letters, tombstones (offsets only)
           ─► key "billing" ─► billing: ordering stage ─► units (whole source transactions)
                                        ─► engine ─► emissions, dead letters, Progress
           ─► erp_out (ERP tables + outbox)

``decode`` runs on the worker that read the record (stateless, parallel). ``billing`` first
restores each source's commit order and groups its transactions into units
(:mod:`dataflows.ordering`), then applies each unit to the engine; it is one keyed engine
(see ARCHITECTURE.md for why one key, and its limits). Tests pass a ``TestingSource`` of
:class:`bytewax.connectors.kafka.KafkaSourceMessage` and testing sinks; production passes a
``KafkaSource`` and the ERP sink (which also carries dead letters to ``billing.dlq`` through
its outbox). Step ids are part of the recovery keys: never rename them without a migration.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import bytewax.operators as op
import structlog
from bytewax.connectors.kafka import KafkaError, KafkaSourceMessage
from bytewax.dataflow import Dataflow, Stream
from bytewax.inputs import Source
from bytewax.outputs import Sink
from prometheus_client import Counter

from billsync.change import Change, Tombstone, TxMarker
from billsync.errors import RecordContext, RecordError
from dataflows.billing.mappings import Mappings
from dataflows.cdc.deadletter import dead_letter
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.emissions import PARTITION, SinkItem
from dataflows.journal import Compaction
from dataflows.logic import BillingLogic
from dataflows.ordering import Letter, Ordered, orderer_factory
from dataflows.progress import PROGRESS
from dataflows.sharding import (
    EXCHANGED,
    MERGE_KEY,
    MergeLogic,
    SequencerLogic,
    ShardLogic,
    check_layout,
    shards_dir,
)
from dataflows.snapshots import pickle_by_constructor

FLOW_ID = "billsync"
ENGINE_KEY = "billing"
log = structlog.get_logger(__name__)

EVENTS_IN = Counter(
    "billsync_events_in_total", "Source records read, by outcome", ["topic", "outcome"]
)


def _consumer_error(err: KafkaError[bytes | None, bytes | None]) -> dict[str, Any]:
    msg = err.msg
    ctx = RecordContext(
        topic=msg.topic,
        partition=msg.partition,
        offset=msg.offset,
        key=msg.key,
        value=msg.value,
        extra={"kind": "ConsumerError"},
    )
    return dead_letter(RecordError(f"Kafka consumer error: {err.err}", ctx))


def _ordered_input(item: object) -> Ordered | None:
    """What the ordering stage takes: changes, transaction markers, and dead letters and
    tombstones (at their place in their partition: their offsets are input applied)."""
    if isinstance(item, dict):
        return Letter.of(item)
    if isinstance(item, Tombstone):
        return Letter(None, item.topic, item.partition, item.offset)
    return item if isinstance(item, (Change, TxMarker)) else None


def build_flow(
    source: Source[Any],
    *,
    decoder: Callable[[], ChangeDecoder],
    mappings: Mappings,
    erp_sink: Sink[tuple[str, SinkItem]],
    flow_id: str = FLOW_ID,
    segment_dir: Path | None = None,
    topics: Sequence[str] = (),
    segment_retention_s: float = 0.0,
    compaction: Compaction = "fork",
    shards: int = 1,
) -> Dataflow:
    """Wire the billing flow. ``decoder`` is called once per worker (it holds caches).

    ``segment_dir`` (beside the recovery store) receives the stubs of final items once per
    close instead of in every snapshot (:mod:`dataflows.snapshots`), and the billing step's
    base and journal (:mod:`dataflows.journal`), whose files of old generations are deleted
    once older than ``segment_retention_s`` (the recovery store's backup interval). A new
    base is written by a forked child (``compaction="fork"``, where the platform has a
    copy-on-write fork) or in the flow's thread (``"inline"``), :mod:`dataflows.journal`.
    ``topics``: the topics the source reads; the ordering stage waits for a source's
    transactions only when its transaction topic is among them. ``shards`` > 1: the billing
    step partitioned by contract (:mod:`dataflows.sharding`; its own step ids, so a recovery
    store is of one layout: :func:`~dataflows.sharding.check_layout`)."""
    new_orderer = orderer_factory(topics)
    if shards < 1:
        raise ValueError(f"shards: {shards}")
    if segment_dir is not None:
        check_layout(segment_dir, shards)

    decoders: dict[str, ChangeDecoder] = {}

    def decode(
        item: KafkaSourceMessage[bytes | None, bytes | None]
        | KafkaError[bytes | None, bytes | None],
    ) -> Change | Tombstone | TxMarker | dict[str, Any]:
        if isinstance(item, KafkaError):
            EVENTS_IN.labels(topic=str(item.msg.topic), outcome="consumer_error").inc()
            return _consumer_error(item)
        dec = decoders.get("d")
        if dec is None:
            dec = decoders["d"] = decoder()
        topic = str(item.topic)
        PROGRESS.note(topic, int(item.partition or 0), int(item.offset or 0))
        try:
            out = dec.decode(
                topic, int(item.partition or 0), int(item.offset or 0), item.key, item.value
            )
        except RecordError as exc:
            EVENTS_IN.labels(topic=topic, outcome="dead_letter").inc()
            letter = dead_letter(exc)
            log.warning(
                "dead_letter",
                topic=topic,
                partition=item.partition,
                offset=item.offset,
                key=item.key.decode("utf-8", "replace") if item.key else None,
                error_type=letter["error_type"],
                error=letter["error"],
            )
            return letter
        outcome = (
            "tombstone"
            if isinstance(out, Tombstone)
            else "marker"
            if isinstance(out, TxMarker)
            else "change"
        )
        EVENTS_IN.labels(topic=topic, outcome=outcome).inc()
        return out

    flow = Dataflow(flow_id)
    raw = op.input("cdc_in", flow, source)
    decoded = op.map("decode", raw, decode)
    changes: Stream[Ordered] = op.filter_map("changes", decoded, _ordered_input)
    keyed = op.key_on("route", changes, lambda _c: ENGINE_KEY)

    if shards == 1:

        def billing(resume: bytes | None) -> BillingLogic:
            return BillingLogic(
                mappings,
                resume,
                segment_dir,
                new_orderer,
                retain_s=segment_retention_s,
                compaction=compaction,
            )

        billed = op.key_rm("unkey", op.stateful("billing", keyed, billing))
    else:
        pickle_by_constructor(*EXCHANGED)
        root = shards_dir(segment_dir)
        exchange = root / "exchange"

        def sequencer(resume: bytes | None) -> SequencerLogic:
            return SequencerLogic(resume, shards, exchange, new_orderer)

        def shard(resume: bytes | None) -> ShardLogic:
            return ShardLogic(mappings, resume, shards, root, exchange,
                              retain_s=segment_retention_s, compaction=compaction)  # fmt: skip

        numbered = op.key_rm("to_shards", op.stateful("sequence", keyed, sequencer))
        bundles = op.key_rm("from_shards", op.stateful("shard", numbered, shard))
        to_merge = op.key_on("merge_key", bundles, lambda _b: MERGE_KEY)
        billed = op.key_rm(
            "merged", op.stateful("merge", to_merge, partial(MergeLogic.build, shards))
        )
    to_erp: Stream[tuple[str, SinkItem]] = op.key_on("one_writer", billed, lambda _x: PARTITION)
    op.output("erp_out", to_erp, erp_sink)
    return flow
