"""The ERP writer: applies target changes to the ERP tables, exactly once per effect.

Guarantee: after any crash and replay, for every source item the ledger
(``erp_billing_transactions``) nets to the item's target, its net posting carries the
target's dimensions, and no effect is posted twice. The ledger, the line states and the
outbox records are a function of the emission sequence only — not of where batches begin and
end — and, fed with input progress (the sink, :mod:`sinks.erp.replay`), a restart posts
nothing an uninterrupted run over the same input would not (SPEC 4).

How: each batch is applied in ONE database transaction that
1. groups the batch per line, keeping every target of the line in emission order (the line
   changes between two period events together; each close or reopen at its own point);
2. reads what the ERP already holds for those lines (``billing_line_state`` and the ledger,
   by the full key (source_type, source_id) of their indexes: a batch reads only its own
   items' rows, whatever the ledger's size; on PostgreSQL one ledger row per item, the sums
   taken in the query), so the *database* is the truth, not the dataflow's memory;
3. posts **each step in turn**: step i appends the entries from step i-1's target (the first
   step: from what the ledger holds) to step i's (:func:`dataflows.billing.ledger.postings`:
   a changed ledger dimension is a reversal under the old dimensions and a charge under the
   new ones), with step i's source position and posting period and deterministic
   transaction ids (a unique key refuses a duplicate even under a stale read) — exactly the
   entries the steps would post one batch each; a line with one step in the batch costs
   what it always did;
4. emits one ``billing.exceptions`` event per state change the engine decided, in order —
   also for a line held and released within the batch — and ``corrected`` when a final line
   is changed by its own row;
5. upserts or deletes the line state (the row of the step that last changed it, with that
   step's position), the invoice schedule, and writes the Kafka records (transactions,
   exception events, in emission order) into ``billing_outbox``, the touched (project,
   period) keys into ``recon_dirty`` and, given ``covers``, the input progress into
   ``billing_progress`` — all in the same transaction.

Replays. With input progress (``apply(batch, covers=...)``, the sink): the sink's replay
gate (:mod:`sinks.erp.replay`) holds back the prefix a restart replays and hands it over as
ONE coalesced batch (:meth:`ErpWriter.apply_coalesced`: per line its last target, diffed
against the ERP — nothing when the replay repeats the input); every other batch is new to the
ERP, so all its steps are applied and all their events emitted (the stored position is not
consulted: positions repeat under Debezium snapshot reads and ``mappings-changed``, where
guessing from it would drop real steps). The one way a batch can reach the ERP twice then is
a retried transaction whose commit did succeed (its acknowledgement was lost): a retry whose
``covers`` the ERP has already committed does nothing.

Without input progress (``covers=None``: a caller that sends no ``Progress``, as before it
existed) replays are recognised by the stored line state (:func:`_unapplied`): it carries the
source position of the step that last changed it, and only the steps after that emission (or,
if it is not in the replayed batch, every step, from the stored state) are posted and
emitted. So such a replay is silent for every line that still has a line state; the steps of
a line whose replayed steps end with no line state (unapproved or deleted) are applied again
(no row is left to recognise them by): their events are emitted again and the ledger gets a
charge and its reversal, netting to 0. Where several changes share one source position, a
line leaving and coming back to its stored state under that same position is taken as
applied.

A database outage is retried with exponential backoff (the whole transaction, which is
idempotent by construction); a batch is never half applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    and_,
    bindparam,
    delete,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from billsync.change import SourcePosition
from dataflows.billing.ledger import LedgerEntry, Posted, postings
from dataflows.billing.periods import CLOSE, FINAL_STATES, posting_period
from dataflows.billing.target import (
    ZERO,
    LineKey,
    LineTarget,
    LineUpdate,
    PeriodEvent,
    ScheduleLine,
    ScheduleUpdate,
    SourceType,
    State,
)
from dataflows.emissions import Covers, Emission
from sinks.erp import tables as t
from sinks.erp.bulk import append
from sinks.erp.migrate import publish_periods, upgrade
from sinks.erp.records import (
    EXCEPTIONS_TOPIC,
    TRANSACTIONS_TOPIC,
    correction_event,
    dead_letter_row,
    exception_event,
    jsonable,
    transaction_record,
)
from sinks.erp.tables import STATE_FIELDS
from sinks.kafka.outbox import enqueue

log = structlog.get_logger(__name__)

_CHUNK = 500
_LINE_KEY = ("source_type", "source_id")
# billing_line_state columns in a secondary index (sinks/erp/tables.py)
_INDEXED_LINE_COLUMNS = ("project_id", "period", "state", "reason", "contract_id")


@dataclass(frozen=True, slots=True)
class BatchResult:
    lines_changed: int
    entries: tuple[LedgerEntry, ...]
    exception_events: int
    schedule_changed: int
    # the topics of dead letters billing.dlq could not take (quarantined in the transaction):
    # count them once it committed (:func:`sinks.kafka.quarantine.count`)
    quarantined: tuple[str, ...] = ()


def line_row(
    target: LineTarget, position: str | None, now: datetime, final_period: str | None = None
) -> dict[str, Any]:
    """The ``billing_line_state`` row of ``target``: open, as every emitted target, unless a
    coalesced replay says the line ended final (``final_period``, see :mod:`sinks.erp.replay`)."""
    return {
        "source_type": target.source_type.value,
        "source_id": target.source_id,
        "state": target.state.value,
        "reason": target.reason,
        "contract_id": target.contract_id,
        "project_id": target.project_id,
        "period": target.period,
        "billable_amount": target.billable_amount,
        "billed_amount": target.billed_amount,
        "held_amount": target.held_amount,
        "tax_amount": target.tax_amount,
        "covered_hours": target.covered_hours,
        "currency": target.currency,
        "hours": target.hours,
        "billable": target.billable,
        "final": final_period is not None,  # a close marks lines final in place
        "final_period": final_period,
        "source_position": position,
        "updated_at": now,
    }


def _schedule_row(line: ScheduleLine) -> dict[str, Any]:
    return {
        "milestone_id": line.milestone_id,
        "contract_id": line.contract_id,
        "project_id": line.project_id,
        "due_date": line.due_date,
        "amount": line.amount,
        "currency": line.currency,
        "status": line.status,
    }


def _transient(exc: BaseException) -> bool:
    """Connection-level failures are retried; constraint or data errors are not."""
    if isinstance(exc, OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class ErpWriter:
    """Applies batches of :class:`Emission` to the ERP tables. See the module docstring."""

    def __init__(
        self,
        engine: Engine,
        *,
        retry_for_seconds: float = 300.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        self._retry_for = retry_for_seconds
        self._clock = clock

    def ensure_schema(self) -> None:
        t.metadata.create_all(self._engine)
        upgrade(self._engine)  # an ERP from before closed periods gains its columns
        publish_periods(self._engine)  # the erp connector captures this schema's closes

    def apply(
        self,
        batch: Sequence[Emission],
        *,
        covers: Covers | None = None,
        letters: Sequence[dict[str, Any]] = (),
    ) -> BatchResult:
        """Apply ``batch`` step by step in one transaction (see the module docstring).

        ``covers`` (the sink's units, per input partition the highest offset they released):
        the batch is new to the ERP — the sink's replay gate holds back what a restart
        replays — and ``billing_progress`` records it in the same transaction. None (a
        caller that does not track input, e.g. a test): replayed steps are recognised by the
        stored line state instead (:func:`_unapplied`).
        """
        if not batch and not covers and not letters:
            return BatchResult(0, (), 0, 0)
        return self._in_transaction(
            lambda conn, retried: self._apply_batch(conn, batch, covers, retried, letters)
        )

    def apply_coalesced(
        self,
        lines: Sequence[Emission],
        *,
        finals: Mapping[LineKey, str],
        periods: Sequence[tuple[PeriodEvent, Covers]],
        covers: Covers,
        letters: Sequence[dict[str, Any]] = (),
    ) -> BatchResult:
        """Apply a replayed prefix as ONE batch (built by :mod:`sinks.erp.replay`), in one
        transaction: ``lines`` holds each line's and milestone's LAST emission of the prefix,
        in stream order, each diffed against the ERP (where the replay repeats what the ERP
        applied, that is nothing: no entry, event, outbox row or recon key); ``finals`` the
        ``final_period`` of the lines that end final (the prefix's closes after their last
        emission); ``periods`` every close/reopen of the prefix with its unit's covers: only
        those beyond what the ERP committed are applied (first: the others are applied
        already, their effect on the emitted lines is in ``finals``)."""
        return self._in_transaction(
            lambda conn, _retried: _with_letters(
                self._apply_coalesced(conn, lines, finals, periods, covers),
                conn,
                letters,
                self._clock(),
            )
        )

    def committed(self) -> dict[str, int]:
        """``billing_progress``: per input partition, the highest offset the ERP applied."""
        with self._engine.connect() as conn:
            return self._committed(conn)

    def _in_transaction(self, work: Callable[[Connection, bool], BatchResult]) -> BatchResult:
        """``work`` in one transaction, retried whole while the database is unreachable;
        ``work`` is told whether an earlier attempt may have committed (a lost commit ack)."""
        for attempt in Retrying(
            retry=retry_if_exception(_transient),
            wait=wait_exponential(multiplier=0.5, max=30),
            stop=stop_after_delay(self._retry_for),
            before_sleep=before_sleep_log(log, 30),
            reraise=True,
        ):
            with attempt, self._engine.begin() as conn:
                return work(conn, attempt.retry_state.attempt_number > 1)
        raise AssertionError("unreachable: Retrying either returns or raises")

    # --- the transaction -------------------------------------------------------------------

    def _apply_batch(
        self,
        conn: Connection,
        batch: Sequence[Emission],
        covers: Covers | None,
        retried: bool,
        letters: Sequence[dict[str, Any]] = (),
    ) -> BatchResult:
        if covers is None:
            result = self._apply(conn, batch, trusted=False)
            return _with_letters(result, conn, letters, self._clock())
        committed = self._committed(conn)
        if retried and covers and not _beyond(covers, committed):
            # an earlier attempt committed (its acknowledgement was lost): nothing to do
            log.info("erp_batch_already_applied", covers=dict(covers))
            return BatchResult(0, (), 0, 0)
        result = self._apply(conn, batch, trusted=True)
        self._record(conn, covers, committed)
        return _with_letters(result, conn, letters, self._clock())

    def _apply_coalesced(
        self,
        conn: Connection,
        lines: Sequence[Emission],
        finals: Mapping[LineKey, str],
        periods: Sequence[tuple[PeriodEvent, Covers]],
        covers: Covers,
    ) -> BatchResult:
        committed = self._committed(conn)
        for event, unit in periods:
            if _beyond(unit, committed):  # a close/reopen the ERP has not applied yet
                self._apply_period(conn, event)
        result = self._apply_lines(conn, lines, trusted=True, finals=finals)
        self._record(conn, covers, committed)
        return result

    def _apply(self, conn: Connection, batch: Sequence[Emission], *, trusted: bool) -> BatchResult:
        """The batch in stream order: the line changes between two period events are
        applied together, each close or reopen at its own point (SPEC 2b)."""
        results: list[BatchResult] = []
        segment: list[Emission] = []
        for em in batch:
            if isinstance(em.update, PeriodEvent):
                if segment:
                    results.append(self._apply_lines(conn, segment, trusted=trusted))
                    segment = []
                self._apply_period(conn, em.update)
            else:
                segment.append(em)
        if segment:
            results.append(self._apply_lines(conn, segment, trusted=trusted))
        return BatchResult(
            sum(r.lines_changed for r in results),
            tuple(e for r in results for e in r.entries),
            sum(r.exception_events for r in results),
            sum(r.schedule_changed for r in results),
        )

    def _committed(self, conn: Connection) -> dict[str, int]:
        p = t.billing_progress
        rows = conn.execute(select(p.c.input_partition, p.c.committed_offset))
        return {k: int(v) for k, v in rows}

    def _record(self, conn: Connection, covers: Covers, committed: Mapping[str, int]) -> None:
        """``billing_progress`` := the higher of what it holds and ``covers``, per partition."""
        p = t.billing_progress
        now = self._clock()
        fresh: list[dict[str, Any]] = []
        moved: list[dict[str, Any]] = []
        for key, offset in highest(covers).items():
            if key not in committed:
                fresh.append(
                    {"input_partition": key, "committed_offset": offset, "updated_at": now}
                )
            elif offset > committed[key]:
                moved.append({"key": key, "committed_offset": offset, "updated_at": now})
        if fresh:
            conn.execute(insert(p), fresh)
        if moved:
            conn.execute(update(p).where(p.c.input_partition == bindparam("key")), moved)

    def _apply_period(self, conn: Connection, event: PeriodEvent) -> None:
        """A close marks final, in place, every open line of the period or before in a final
        state — the same predicate the engine applies to its own open lines at the same
        point of the stream (:func:`dataflows.billing.periods.becomes_final`); a reopen makes
        the lines that close had made final open again."""
        s = t.billing_line_state
        if event.kind == CLOSE:
            conn.execute(
                update(s)
                .where(
                    s.c.final.is_(False),
                    s.c.period <= event.period,
                    s.c.state.in_([st.value for st in FINAL_STATES]),
                )
                .values(final=True, final_period=event.period)
            )
        else:
            conn.execute(
                update(s)
                .where(s.c.final_period == event.period)
                .values(final=False, final_period=None)
            )
        log.info("period_applied", kind=event.kind, period=event.period)

    def _apply_lines(
        self,
        conn: Connection,
        batch: Sequence[Emission],
        *,
        trusted: bool,
        finals: Mapping[LineKey, str] | None = None,
    ) -> BatchResult:
        """One segment (no period event inside), posted step by step.

        ``trusted``: every emission is new to the ERP (the caller tracks input progress);
        otherwise the steps the stored line state already reflects are recognised and
        skipped (:func:`_unapplied`). ``finals`` (a coalesced replay only): the
        ``final_period`` each line ends with; the others end open, as every emitted target.
        """
        now = self._clock()
        chains: dict[LineKey, list[_Step]] = {}
        sched: dict[str, ScheduleLine | None] = {}
        for i, em in enumerate(batch):  # per line, every target of this batch in order
            if isinstance(em.update, LineUpdate):
                chains.setdefault(em.update.key, []).append(_Step(i, em.update.new, em))
            elif isinstance(em.update, ScheduleUpdate):
                sched[em.update.milestone_id] = em.update.new

        stored = self._stored_lines(conn, list(chains))
        posted, last_entry = self._posted(conn, list(chains))
        entries: list[LedgerEntry] = []
        ledger_rows: list[dict[str, Any]] = []
        outbox: list[tuple[int, dict[str, Any]]] = []  # (emission index, row): emission order
        # per (project, period): the latest step that touched it, in stream order (so the
        # recon key carries the same position however the stream was cut into batches)
        dirty: dict[tuple[str, str], _Step] = {}
        upserts: list[dict[str, Any]] = []
        deletes: list[LineKey] = []
        events = 0
        for key, chain in chains.items():
            old = stored.get(key)
            steps = chain if trusted else _unapplied(old, chain)
            final_period = finals.get(key) if finals is not None else None
            topic_key = f"{key[0]}|{key[1]}"
            have = posted.get(key, Posted())
            newest = last_entry.get(key)
            before = old  # the line state before the step: stored, then each step's
            changed = False
            last_change = steps[0] if steps else chain[-1]
            for n, step in enumerate(steps):
                row = (
                    line_row(step.target, step.position, now, final_period)
                    if step.target is not None
                    else None
                )
                # the step's entries, from what the ledger holds after the previous step
                previous = _previous_dims(before, newest)
                into_closed = step.emission.closed_through
                label = step.position if finals is None else not_behind(step.position, newest)
                for e in postings(key[0], key[1], have, step.target, previous=previous):
                    into = posting_period(e.period, into_closed)
                    newest = _ledger_row(e, have.entries, label, now, into)
                    ledger_rows.append(newest)
                    entries.append(e)
                    have = have.plus(e)
                    record = transaction_record(e, label, now, into)
                    outbox.append((step.index, _outbox(TRANSACTIONS_TOPIC, topic_key, record, now)))
                    if e.period is not None:
                        _touch(dirty, (e.project_id or "", e.period), step)
                if _same_line(before, row):
                    continue
                if n == 0 and _reopens(step) and old is not None and old["final"]:
                    # a final line changed by its own row: a prior-period correction (SPEC 2b)
                    fix = correction_event(old, row, step.position, now)
                    events += 1
                    outbox.append((step.index, _outbox(EXCEPTIONS_TOPIC, topic_key, fix, now)))
                # billing.exceptions gets every state change the engine decided, in order
                event = exception_event(before, row, step.position, now)
                if event is not None:
                    events += 1
                    outbox.append((step.index, _outbox(EXCEPTIONS_TOPIC, topic_key, event, now)))
                before = row
                changed = True
                last_change = step
            if not changed:
                continue  # the state is as stored (a replay, or amounts only moved and back)
            # the row of the step that last changed the state, with that step's position
            if before is None:
                if old is not None:
                    deletes.append(key)
            else:
                upserts.append(before)
            for r in (old, before):
                if r is not None and r["period"] is not None:
                    _touch(dirty, (r["project_id"] or "", r["period"]), last_change)

        append(conn, t.erp_billing_transactions, ledger_rows)
        self._write_lines(conn, upserts, deletes, stored)
        n_sched = self._write_schedule(conn, sched)
        outbox.sort(key=lambda r: r[0])  # stable: per emission, transactions then events
        append(conn, t.billing_outbox, [row for _, row in outbox])
        self._mark_dirty(conn, {k: step.position for k, step in dirty.items()})
        return BatchResult(len(upserts) + len(deletes), tuple(entries), events, n_sched)

    def _stored_lines(self, conn: Connection, keys: list[LineKey]) -> dict[LineKey, dict[str, Any]]:
        out: dict[LineKey, dict[str, Any]] = {}
        for source_type, ids in _by_source_type(keys).items():
            for chunk in _chunks(ids):
                for r in conn.execute(line_state_query(source_type, chunk)).mappings():
                    out[(r["source_type"], r["source_id"])] = dict(r)
        return out

    def _posted(
        self, conn: Connection, keys: list[LineKey]
    ) -> tuple[dict[LineKey, Posted], dict[LineKey, dict[str, Any]]]:
        """Per item: what the ledger holds, and its newest entry (the dims it was posted with).

        PostgreSQL sums each item's entries in the query and returns one row per item (its
        newest entry with the sums: :func:`ledger_totals_query`), so a batch reads one row
        per item however often the item was corrected; ``NUMERIC`` sums are exact. SQLite
        stores amounts as text, and its ``sum`` would make floats of them: there the entries
        are read and summed here, as ``Decimal``."""
        if conn.dialect.name == "postgresql":
            return self._posted_totals(conn, keys)
        return self._posted_rows(conn, keys)

    def _posted_rows(
        self, conn: Connection, keys: list[LineKey]
    ) -> tuple[dict[LineKey, Posted], dict[LineKey, dict[str, Any]]]:
        out: dict[LineKey, Posted] = {}
        last: dict[LineKey, dict[str, Any]] = {}
        for source_type, ids in _by_source_type(keys).items():
            for chunk in _chunks(ids):
                for r in conn.execute(ledger_query(source_type, chunk)).mappings():
                    k = (r["source_type"], r["source_id"])
                    p = out.get(k, Posted())
                    out[k] = Posted(
                        p.amount + r["amount"], p.tax_amount + r["tax_amount"], p.entries + 1
                    )
                    last[k] = dict(r)
        return out, last

    def _posted_totals(
        self, conn: Connection, keys: list[LineKey]
    ) -> tuple[dict[LineKey, Posted], dict[LineKey, dict[str, Any]]]:
        out: dict[LineKey, Posted] = {}
        last: dict[LineKey, dict[str, Any]] = {}
        columns = [c.name for c in t.erp_billing_transactions.columns]
        for source_type, ids in _by_source_type(keys).items():
            for chunk in _chunks(ids):
                for r in conn.execute(ledger_totals_query(source_type, chunk)).mappings():
                    k = (r["source_type"], r["source_id"])
                    out[k] = Posted(r[_SUM_AMOUNT], r[_SUM_TAX], r[_ENTRIES])
                    last[k] = {c: r[c] for c in columns}
        return out, last

    def _write_lines(
        self,
        conn: Connection,
        upserts: list[dict[str, Any]],
        deletes: list[LineKey],
        stored: dict[LineKey, dict[str, Any]],
    ) -> None:
        """Rows the ERP holds are UPDATEd in place (one executemany): only the columns
        change, not the indexes' keys, so a batch dirties few pages however large the table;
        new rows are inserted, gone rows deleted (one DELETE per chunk, not one per line)."""
        s = t.billing_line_state
        for source_type, ids in _by_source_type(deletes).items():
            for chunk in _chunks(ids):
                conn.execute(
                    delete(s).where(s.c.source_type == source_type, s.c.source_id.in_(chunk))
                )
        # SQLite maintains an index when its columns are SET, whatever the values: a row whose
        # indexed columns stay is updated without them
        same_keys: list[dict[str, Any]] = []
        moved_keys: list[dict[str, Any]] = []
        for r in upserts:
            old = stored.get((r["source_type"], r["source_id"]))
            if old is None:
                continue
            same = all(old[c] == r[c] for c in _INDEXED_LINE_COLUMNS)
            skip = _LINE_KEY + (_INDEXED_LINE_COLUMNS if same else ())
            row = {c: v for c, v in r.items() if c not in skip}
            row.update(key_type=r["source_type"], key_id=r["source_id"])
            (same_keys if same else moved_keys).append(row)
        by_key = update(s).where(
            s.c.source_type == bindparam("key_type"), s.c.source_id == bindparam("key_id")
        )
        for rows in (same_keys, moved_keys):
            if rows:
                conn.execute(by_key, rows)
        append(conn, s, [r for r in upserts if (r["source_type"], r["source_id"]) not in stored])

    def _write_schedule(self, conn: Connection, sched: dict[str, ScheduleLine | None]) -> int:
        s = t.invoice_schedule
        changed = 0
        for mid, line in sched.items():
            cur = conn.execute(select(s).where(s.c.milestone_id == mid)).mappings().first()
            if line is None:
                if cur is not None:
                    conn.execute(delete(s).where(s.c.milestone_id == mid))
                    changed += 1
                continue
            row = _schedule_row(line)
            if cur is None:
                conn.execute(insert(s), [row])
                changed += 1
            elif dict(cur) != row:
                conn.execute(update(s).where(s.c.milestone_id == mid).values(**row))
                changed += 1
        return changed

    def _mark_dirty(self, conn: Connection, dirty: dict[tuple[str, str], str | None]) -> None:
        d = t.recon_dirty
        for chunk in _chunks(sorted(dirty)):  # one DELETE per chunk of keys, not one per key
            conn.execute(delete(d).where(tuple_(d.c.project_id, d.c.period).in_(chunk)))
        append(
            conn,
            d,
            [
                {"project_id": p, "period": per, "source_position": pos}
                for (p, per), pos in dirty.items()
            ],
        )


@dataclass(frozen=True, slots=True)
class _Step:
    """One target of a line in a batch: its emission's index in the batch, and where from."""

    index: int
    target: LineTarget | None
    emission: Emission

    @property
    def position(self) -> str | None:
        return self.emission.source_position


def _touch(dirty: dict[tuple[str, str], _Step], key: tuple[str, str], step: _Step) -> None:
    """``key`` was touched by ``step``: keep the latest step in stream order."""
    held = dirty.get(key)
    if held is None or step.index > held.index:
        dirty[key] = step


def _same_state(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Two billing_line_state rows (None: no row) agree on every :data:`STATE_FIELDS`."""
    if a is None or b is None:
        return a is None and b is None
    return all(a[f] == b[f] for f in STATE_FIELDS)


def _same_line(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """:func:`_same_state`, and made final by the same close (a coalesced replay compares
    the line's final flag it computed with the stored one)."""
    return _same_state(a, b) and (a is None or b is None or a["final_period"] == b["final_period"])


def _unapplied(stored: dict[str, Any] | None, chain: list[_Step]) -> list[_Step]:
    """The steps of ``chain`` the ERP does not reflect yet.

    The stored row carries the position of the last emission of the batch that last changed
    its state. If that emission is in ``chain`` (same position, same state), this batch is
    a replay up to it: only the steps after it are new. Otherwise the whole chain is new
    (the steps a replay repeats before the ERP's point leave the state as stored: any state
    change would have rewritten the row with a later position). Where positions repeat, the
    last match wins. A line with no stored row has nothing to be recognised by: all steps.
    """
    if stored is None:
        return chain
    for n in range(len(chain) - 1, -1, -1):
        step = chain[n]
        if step.target is None or step.position != stored["source_position"]:
            continue
        if _same_state(stored, line_row(step.target, step.position, stored["updated_at"])):
            return chain[n + 1 :]
    return chain


def _with_letters(
    result: BatchResult, conn: Connection, letters: Sequence[dict[str, Any]], now: datetime
) -> BatchResult:
    """Dead letters of the batch's units into the outbox (``billing.dlq``), in the batch's
    transaction: recorded with the input progress that covers them, so a replay does not
    send them again."""
    if not letters:
        return result
    refused = enqueue(conn, [dead_letter_row(d, now) for d in letters], now)
    return replace(result, quarantined=tuple(refused))


def highest(covers: Covers) -> dict[str, int]:
    """Per input partition, the highest offset in ``covers``."""
    out: dict[str, int] = {}
    for key, offset in covers:
        if offset > out.get(key, -1):
            out[key] = offset
    return out


def _beyond(covers: Covers, committed: Mapping[str, int]) -> bool:
    """Whether ``covers`` reaches past what the ERP committed in some partition."""
    return any(offset > committed.get(key, -1) for key, offset in covers)


def _by_source_type(keys: Iterable[LineKey]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for source_type, source_id in sorted(set(keys)):
        out.setdefault(source_type, []).append(source_id)
    return out


def line_state_query(source_type: str, source_ids: Sequence[str]) -> Select[Any]:
    """The stored line states of some items of one type: by the full primary key."""
    s = t.billing_line_state
    return select(s).where(s.c.source_type == source_type, s.c.source_id.in_(source_ids))


def ledger_query(source_type: str, source_ids: Sequence[str]) -> Select[Any]:
    """The ledger entries of some items of one type, in item order: by the full key of
    ``ix_ebt_item_seq`` (source_type, source_id, seq), so a batch reads only its items'
    entries whatever the ledger's size."""
    tx = t.erp_billing_transactions
    return (
        select(tx)
        .where(tx.c.source_type == source_type, tx.c.source_id.in_(source_ids))
        .order_by(tx.c.source_id, tx.c.seq)
    )


def not_behind(position: str | None, newest: Mapping[str, Any] | None) -> str | None:
    """The source position a coalesced replay posts a line's correction with: the position
    of the line's last emission in the replayed prefix, unless the item's newest ledger entry
    carries a later position of the same source, which it then repeats.

    A replay that interleaves the sources otherwise than the killed run did may end a line's
    prefix at an emission older than the one the killed run last posted for it (the newer
    unit changed the line there, not here); the difference is still posted once, after that
    entry, and the ledger's positions must not go backwards in a source's commit order
    (SPEC 4; ``ops/reads/audit/positions.py``). Seen in chaos 01 on 2 processes of 2
    (2026-12-01). Positions of different sources, or outside the commit order, are kept."""
    text = None if newest is None else newest.get("source_position")
    if position is None or text is None:
        return position
    mine, theirs = SourcePosition.parse(position), SourcePosition.parse(text)
    if mine is None or theirs is None or mine.source != theirs.source:
        return position
    a, b = mine.commit_order(), theirs.commit_order()
    if a is None or b is None or b <= a:
        return position
    return str(text)


_SUM_AMOUNT, _SUM_TAX, _ENTRIES, _LAST_SEQ = "sum_amount", "sum_tax_amount", "entries", "last_seq"


def ledger_totals_query(source_type: str, source_ids: Sequence[str]) -> Select[Any]:
    """Per item of some items of one type: its newest ledger entry, with the sums of its
    entries' amounts and taxes and their count. The sums are grouped over the full key of
    ``ix_ebt_item_seq``; the newest entry is found by that key too (seq = max). For
    PostgreSQL, whose ``NUMERIC`` sums are exact (:meth:`ErpWriter._posted`)."""
    tx = t.erp_billing_transactions
    totals = (
        select(
            tx.c.source_id,
            func.sum(tx.c.amount).label(_SUM_AMOUNT),
            func.sum(tx.c.tax_amount).label(_SUM_TAX),
            func.count().label(_ENTRIES),
            func.max(tx.c.seq).label(_LAST_SEQ),
        )
        .where(tx.c.source_type == source_type, tx.c.source_id.in_(source_ids))
        .group_by(tx.c.source_id)
        .subquery("totals")
    )
    return (
        select(tx, totals.c[_SUM_AMOUNT], totals.c[_SUM_TAX], totals.c[_ENTRIES])
        .join(totals, and_(tx.c.source_id == totals.c.source_id, tx.c.seq == totals.c[_LAST_SEQ]))
        .where(tx.c.source_type == source_type)
    )


def _ledger_row(
    entry: LedgerEntry,
    seq: int,
    position: str | None,
    now: datetime,
    posting: str | None = None,
) -> dict[str, Any]:
    """An erp_billing_transactions row: the entry, its sequence number for the item, where,
    and the accounting period it is posted into."""
    row = {f: getattr(entry, f) for f in LedgerEntry.__slots__}
    row.update(seq=seq, source_position=position, created_at=now, posting_period=posting)
    return row


def _reopens(step: _Step) -> bool:
    update = step.emission.update
    return isinstance(update, LineUpdate) and update.reopened


def _previous_dims(state: dict[str, Any] | None, entry: dict[str, Any] | None) -> LineTarget | None:
    """The line as last posted: the stored state, with the newest ledger entry's dimensions."""
    if state is None and entry is None:
        return None
    base = entry or state  # amounts live where they were last posted
    assert base is not None
    dims = entry or {}
    return LineTarget(
        source_type=SourceType(base["source_type"]),
        source_id=base["source_id"],
        state=State(state["state"]) if state else State.BILLED,
        reason=state["reason"] if state else None,
        contract_id=base["contract_id"],
        project_id=base["project_id"],
        period=base["period"],
        billed_amount=state["billed_amount"] if state else ZERO,
        tax_amount=state["tax_amount"] if state else ZERO,
        currency=base["currency"],
        hours=base["hours"],
        erp_customer_id=dims.get("erp_customer_id"),
        legal_entity=dims.get("legal_entity"),
        erp_item_code=dims.get("erp_item_code"),
        revenue_account=dims.get("revenue_account"),
        cost_center=dims.get("cost_center"),
        work_date=dims.get("work_date"),
        rate=dims.get("rate"),
    )


def _outbox(topic: str, key: str, record: dict[str, Any], now: datetime) -> dict[str, Any]:
    payload = orjson.dumps({k: jsonable(v) for k, v in record.items()}).decode()
    return {"topic": topic, "key": key.encode(), "payload": payload, "created_at": now}
