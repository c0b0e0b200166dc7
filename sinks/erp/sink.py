"""The Bytewax sink of the billing flow: one writer for the ERP tables and the outbox.

Delivery guarantee: **exactly-once effect in the ERP, and a restart posts nothing new** —
after any crash and replay, per source item the ledger nets to its target, no effect is
posted twice, and the ledger, line states and outbox records are entry for entry those of an
uninterrupted run over the same input (SPEC 4; :mod:`sinks.erp.writer`: each batch is
applied step by step in one database transaction, diffed against what the ERP holds, with
deterministic transaction ids, and records its input progress in ``billing_progress``).
Kafka topics (``billing.transactions``, ``billing.exceptions``, ``recon.snapshots``,
``billing.dlq``) are fed from the transactional outbox: **at-least-once, nothing lost**
(:mod:`sinks.kafka.outbox`).

Items: the billing step's emissions and dead letters (dicts: a dead letter is a unit of its
own, at its place in its partition), each unit followed by a
:class:`~dataflows.emissions.Progress`. A :class:`~sinks.erp.replay.ReplayGate` cuts them into
units; a unit's dead letters are written to the outbox in its transaction, so a replay does
not send them to ``billing.dlq`` again. The complete units of a
``write_batch`` are applied as one batch (a source transaction is never applied in part);
emissions of a unit whose ``Progress`` has not come yet wait for the next batch.

On restart: Bytewax replays the input from the last snapshot and the billing step first sends
``Progress(resumed=True)`` with what its snapshot held. Partitions where the ERP's
``billing_progress`` is ahead of it are a replayed prefix: its units are gathered, not
applied, until the flow has passed the ERP's offsets, then applied as ONE coalesced batch
(each line's last target diffed against the ERP: in a replay that repeats the input, nothing
is posted, no event emitted, no recon key marked); then the flow goes on normally. The gate's
state (gathered units) is this partition's Bytewax snapshot, so a second crash while
gathering loses nothing. Pending outbox rows are published first (``build_part``). Without
``Progress`` items (a flow that does not send them) emissions are applied as they come, and a
replay is recognised by the stored line states only (see :mod:`sinks.erp.writer`).

It is a ``FixedPartitionedSink`` with ONE partition that writes: every item (line changes,
schedule changes, dead letters from any worker) is routed to the partition's single primary
worker, so the ERP has exactly one writer and the outbox one relay, whatever the worker
count. A second, empty partition (:data:`PLACEHOLDER`) sorts before it and never receives
an item: Bytewax gives the i-th partition of the sorted list to worker i modulo the worker
count, so the writer runs on worker 1 while the billing key (``billing``) runs on worker 0
— with ``--workers 2`` or ``--processes 2`` the writer, half to two thirds of the flow's work at
1,000 changes/s (BENCHMARKS.md), no longer shares the billing step's worker. The writing
partition keeps its name, ``erp``, so recovery stores of earlier versions resume it. With
``single_writer`` (``billsync run``) the partition also holds the ERP's writer lock
(:mod:`sinks.erp.writer_lock`) from before it writes anything until it closes, so a second
``billsync run`` on the same ERP is refused instead of racing the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import structlog
from bytewax.outputs import FixedPartitionedSink, StatefulSinkPartition
from prometheus_client import Counter, Histogram
from sqlalchemy import Engine

from billsync.errors import DeliveryError
from dataflows.emissions import PARTITION, Emission, Progress, SinkItem
from dataflows.progress import PROGRESS
from sinks.erp import recon
from sinks.erp.replay import Action, Coalesced, GateState, ReplayGate
from sinks.erp.writer import BatchResult, ErpWriter
from sinks.erp.writer_lock import WriterLock
from sinks.kafka import quarantine
from sinks.kafka.outbox import OutboxRelay

log = structlog.get_logger(__name__)

LEDGER_ENTRIES = Counter("billsync_ledger_entries_total", "Ledger entries posted", ["entry_type"])
LINES_CHANGED = Counter("billsync_line_state_changes_total", "billing_line_state rows changed")
DEAD_LETTERS = Counter("billsync_dead_letters_total", "Records sent to billing.dlq", ["topic"])
LATENCY = Histogram(
    "billsync_commit_to_erp_seconds",
    "From the source commit (Debezium source ts) to the ERP write",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
RELAY_FAILURES = Counter(
    "billsync_outbox_publish_failures_total",
    "Outbox relays that could not publish to Kafka (rows kept, retried after a pause)",
)
# After a failed relay (broker or registry down), ERP writes go on and the relay is retried
# this many seconds later: the outbox keeps the rows, so nothing is lost meanwhile.
RELAY_RETRY_S = 5.0
# How long a batch is retried while the ERP is unreachable before the flow stops
# (ErpWriter's ``retry_for_seconds``); ``billsync run`` passes BILLSYNC_ERP_RETRY_S.
ERP_RETRY_S = 300.0


class _ErpPartition(StatefulSinkPartition[SinkItem, GateState | None]):
    def __init__(
        self,
        engine: Engine,
        relay: OutboxRelay | None,
        recon_every_s: float,
        clock: Callable[[], datetime],
        idle_flush: bool = False,
        retry_for_seconds: float = ERP_RETRY_S,
        *,
        single_writer: bool = False,
        resume_state: GateState | None = None,
        topics: Sequence[str] | None = None,
    ) -> None:
        self._topics = frozenset(topics) if topics is not None else None
        self._lock = threading.Lock()  # write_batch, close and the idle timer take turns
        self._engine = engine
        self._writer = ErpWriter(engine, retry_for_seconds=retry_for_seconds, clock=clock)
        self._writer.ensure_schema()
        self._gate = ReplayGate(resume_state)
        # refused here, before anything is written or relayed, if another writer runs
        self._writer_lock = WriterLock.acquire(engine, clock=clock) if single_writer else None
        self._relay = relay
        self._recon_every = recon_every_s
        self._last_recon = 0.0
        self._clock = clock
        self._relay_retry_at = 0.0
        self._publish()  # what a previous run committed but did not publish
        self._closed = threading.Event()
        if idle_flush:
            threading.Thread(target=self._idle, name="billsync-erp-idle", daemon=True).start()

    def _idle(self) -> None:
        """While no batch arrives, still snapshot reconciliation and retry the relay, so the
        last changes before a quiet spell reach recon.snapshots and Kafka within seconds."""
        while not self._closed.wait(self._recon_every):
            with self._lock:
                if self._closed.is_set():
                    return
                try:
                    if time.monotonic() - self._last_recon >= self._recon_every:
                        self._recon()
                    self._publish()
                except Exception as exc:  # the next batch or tick tries again; never die silently
                    log.error("idle_flush_failed", error=str(exc))

    def write_batch(self, values: list[SinkItem]) -> None:
        with self._lock:
            self._write_batch(values)

    def _write_batch(self, values: list[SinkItem]) -> None:
        run: list[SinkItem] = []
        for v in values:
            if isinstance(v, Progress) and v.resumed:
                self._act(self._gate.feed(run))
                run = []
                self._resume(v)
            else:
                run.append(v)
        self._act(self._gate.feed(run))
        if time.monotonic() - self._last_recon >= self._recon_every:
            self._recon()
        self._publish()

    def _resume(self, marker: Progress) -> None:
        """The billing step (re)started: a replayed prefix is gathered if the ERP is ahead."""
        committed = self._writer.committed()
        if self._topics is not None:  # a partition the flow no longer reads never comes
            ignored = sorted(k for k in committed if k.rsplit(":", 1)[0] not in self._topics)
            if ignored:
                log.warning("replay_ignores_unread_partitions", partitions=ignored)
            committed = {k: v for k, v in committed.items() if k not in ignored}
        actions = self._gate.resume(marker.covers, committed)
        gathering = self._gate.gathering
        if gathering is not None:
            log.info(
                "replay_started",
                partitions=sorted(gathering.pending),
                from_offsets={k: gathering.seen.get(k, -1) for k in sorted(gathering.pending)},
                to_offsets=dict(sorted(gathering.pending.items())),
            )
        self._act(actions)

    def _act(self, actions: list[Action]) -> None:
        for action in actions:
            PROGRESS.work()  # working, not stalled (ops/run/watchdog.py)
            if isinstance(action, Coalesced):
                result = self._writer.apply_coalesced(
                    action.lines,
                    finals=action.finals,
                    periods=action.periods,
                    covers=action.covers,
                    letters=action.letters,
                )
                log.info(
                    "replay_ended",
                    partitions=[k for k, _ in action.reached],
                    reached=dict(action.reached),
                    covers=dict(action.covers),
                    units_coalesced=action.units,
                    lines=len(action.lines),
                    lines_changed=result.lines_changed,
                    ledger_entries=len(result.entries),  # 0 when the replay repeats the input
                    exception_events=result.exception_events,
                )
                self._count(result, (), action.letters)
            else:
                result = self._writer.apply(
                    action.emissions, covers=action.covers, letters=action.letters
                )
                if result.lines_changed or result.entries:
                    log.info(
                        "erp_batch",
                        emissions=len(action.emissions),
                        lines_changed=result.lines_changed,
                        ledger_entries=len(result.entries),
                        exception_events=result.exception_events,
                        last_position=action.emissions[-1].source_position,
                    )
                self._count(result, action.emissions, action.letters)

    def _count(
        self,
        result: BatchResult,
        emissions: tuple[Emission, ...],
        letters: tuple[dict[str, Any], ...],
    ) -> None:
        for d in letters:
            DEAD_LETTERS.labels(topic=str(d.get("topic"))).inc()
        quarantine.count(list(result.quarantined), "enqueue")
        LINES_CHANGED.inc(result.lines_changed)
        for e in result.entries:
            LEDGER_ENTRIES.labels(entry_type=e.entry_type).inc()
        now = self._clock()
        for em in emissions:
            if em.source_ts is not None:
                LATENCY.observe(max(0.0, (now - em.source_ts).total_seconds()))

    def _publish(self, *, now: bool = False) -> None:
        """Relay the outbox to Kafka. A delivery failure (the broker or the registry is being
        restarted) must not stop the flow: the rows stay in the outbox and the relay is
        retried ``RELAY_RETRY_S`` later (or at ``close``)."""
        if self._relay is None or (not now and time.monotonic() < self._relay_retry_at):
            return
        try:
            self._relay.flush()
        except DeliveryError as exc:
            RELAY_FAILURES.inc()
            self._relay_retry_at = time.monotonic() + RELAY_RETRY_S
            log.warning("outbox_not_published", retry_in_s=RELAY_RETRY_S, error=str(exc))

    def _recon(self) -> None:
        with self._engine.begin() as conn:
            recon.flush(conn, self._clock())
        self._last_recon = time.monotonic()

    def snapshot(self) -> GateState | None:
        """The ERP database is the sink's state; Bytewax keeps only what the replay gate holds
        back (a replayed prefix being gathered, a unit not complete yet): None usually."""
        with self._lock:
            return self._gate.snapshot()

    def close(self) -> None:
        """Best effort: Bytewax also calls this while unwinding from a failed batch (e.g. the
        ERP database went away); raising again here makes it abort the process without
        printing the original error, so a failure here is printed, not raised."""
        self._closed.set()
        with self._lock:
            held = self._gate.snapshot()
            if held is not None:  # kept in the Bytewax snapshot, applied after a restart
                log.warning(
                    "erp_items_held_back_at_close",
                    gathering_units=held.gathering.units if held.gathering else 0,
                    incomplete_unit_emissions=len(held.carry),
                )
            try:
                self._recon()
            except Exception as exc:  # see the docstring: never raise from close
                log.error("recon_snapshot_not_written", error=str(exc))
            self._publish(now=True)
            if self._writer_lock is not None:
                self._writer_lock.release()


# an empty partition sorted before the writer's: it moves the writer to worker 1 (docstring)
PLACEHOLDER = "_placeholder"
_PARTS = (PLACEHOLDER, PARTITION)
_WRITER_INDEX = sorted(_PARTS).index(PARTITION)


class _Placeholder(StatefulSinkPartition[SinkItem, GateState | None]):
    """The partition that only places the writer: ``part_fn`` never routes an item to it."""

    def write_batch(self, values: list[SinkItem]) -> None:
        if values:  # a routing defect, not data: refuse rather than drop ERP writes
            raise AssertionError(f"{len(values)} items reached the ERP sink's placeholder")

    def snapshot(self) -> None:
        return None


class ErpSink(FixedPartitionedSink[SinkItem, GateState | None]):
    """ERP tables + outbox relay. Items are ``(key, item)``; the key is ignored.

    ``idle_flush`` (production) starts a timer thread in the partition that snapshots
    reconciliation and retries the relay while no batch arrives. (An earlier design fed a
    timer *input* into the flow; a second input stalled the dataflow intermittently under
    Bytewax 0.21 — the inputs spun waiting for an epoch that never completed — so timing
    lives in the sink instead.) ``retry_for_seconds`` is how long a batch waits out an
    unreachable ERP before it raises; ``billsync run``'s stall watchdog waits longer
    (``billsync/settings.py`` refuses ``BILLSYNC_STALL_EXIT_S`` <= ``BILLSYNC_ERP_RETRY_S``).
    ``single_writer`` takes the ERP's writer lock for the partition's lifetime (see the module
    docstring). ``topics``: the topics the flow reads; a replay does not wait for input
    progress the ERP recorded on other topics (a renamed periods topic, say)."""

    def __init__(
        self,
        engine_factory: Callable[[], Engine],
        *,
        relay_factory: Callable[[Engine], OutboxRelay] | None = None,
        recon_every_s: float = 3.0,
        idle_flush: bool = False,
        retry_for_seconds: float = ERP_RETRY_S,
        single_writer: bool = False,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        topics: Sequence[str] | None = None,
    ) -> None:
        self._topics = tuple(topics) if topics is not None else None
        self._engine_factory = engine_factory
        self._retry_for = retry_for_seconds
        self._single_writer = single_writer
        self._relay_factory = relay_factory
        self._recon_every = recon_every_s
        self._idle_flush = idle_flush
        self._clock = clock

    def list_parts(self) -> list[str]:
        return list(_PARTS)

    def part_fn(self, item_key: str) -> int:
        return _WRITER_INDEX  # Bytewax indexes the sorted partitions

    def build_part(
        self, step_id: str, for_part: str, resume_state: GateState | None
    ) -> StatefulSinkPartition[SinkItem, GateState | None]:
        if for_part != PARTITION:
            return _Placeholder()
        engine = self._engine_factory()
        relay = self._relay_factory(engine) if self._relay_factory else None
        return _ErpPartition(
            engine,
            relay,
            self._recon_every,
            self._clock,
            self._idle_flush,
            self._retry_for,
            single_writer=self._single_writer,
            resume_state=resume_state,
            topics=self._topics,
        )
