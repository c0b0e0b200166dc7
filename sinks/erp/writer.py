"""The ERP writer: applies target changes to the ERP tables, exactly once per effect.

Guarantee: after any crash and replay, for every source item the ledger
(``erp_billing_transactions``) nets to the item's target and no effect is posted twice.

How: each batch is applied in ONE database transaction that
1. coalesces the batch to the last target per line (a replayed burst posts only its result);
2. reads what the ERP already holds for those lines (``billing_line_state`` and the ledger
   sums), so the *database* is the truth, not the dataflow's memory;
3. appends only the difference (:func:`dataflows.billing.ledger.postings`) with deterministic
   transaction ids (a unique key refuses a duplicate even under a stale read);
4. upserts or deletes the line state, the invoice schedule, and writes the Kafka records
   (transactions, exception events) into ``billing_outbox`` and the touched
   (project, period) keys into ``recon_dirty`` — all in the same transaction.
A replayed target equal to what the ERP holds changes nothing and emits nothing.
A database outage is retried with exponential backoff (the whole transaction, which is
idempotent by construction); a batch is never half applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog
from sqlalchemy import Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import DBAPIError, OperationalError
from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

from dataflows.billing.ledger import LedgerEntry, Posted, postings
from dataflows.billing.target import (
    ZERO,
    LineKey,
    LineTarget,
    LineUpdate,
    ScheduleLine,
    ScheduleUpdate,
    SourceType,
    State,
)
from sinks.erp import tables as t
from sinks.erp.records import (
    EXCEPTIONS_TOPIC,
    TRANSACTIONS_TOPIC,
    exception_event,
    jsonable,
    transaction_record,
)

log = structlog.get_logger(__name__)

# compared to decide whether a stored line state differs from a target
STATE_FIELDS = (
    "state",
    "reason",
    "contract_id",
    "project_id",
    "period",
    "billable_amount",
    "billed_amount",
    "held_amount",
    "tax_amount",
    "covered_hours",
    "currency",
    "hours",
    "billable",
)
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Emission:
    """One output of the billing step: a target change and the change that caused it."""

    update: LineUpdate | ScheduleUpdate
    source_position: str | None
    source_ts: datetime | None = None


@dataclass(frozen=True, slots=True)
class BatchResult:
    lines_changed: int
    entries: tuple[LedgerEntry, ...]
    exception_events: int
    schedule_changed: int


def line_row(target: LineTarget, position: str | None, now: datetime) -> dict[str, Any]:
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

    def apply(self, batch: Sequence[Emission]) -> BatchResult:
        if not batch:
            return BatchResult(0, (), 0, 0)
        for attempt in Retrying(
            retry=retry_if_exception(_transient),
            wait=wait_exponential(multiplier=0.5, max=30),
            stop=stop_after_delay(self._retry_for),
            before_sleep=before_sleep_log(log, 30),
            reraise=True,
        ):
            with attempt, self._engine.begin() as conn:
                return self._apply(conn, batch)
        raise AssertionError("unreachable: Retrying either returns or raises")

    # --- the transaction -------------------------------------------------------------------

    def _apply(self, conn: Connection, batch: Sequence[Emission]) -> BatchResult:
        now = self._clock()
        lines: dict[LineKey, tuple[LineTarget | None, str | None]] = {}
        sched: dict[str, ScheduleLine | None] = {}
        for em in batch:  # coalesce: the last target of a line in this batch wins
            if isinstance(em.update, LineUpdate):
                lines[em.update.key] = (em.update.new, em.source_position)
            else:
                sched[em.update.milestone_id] = em.update.new

        stored = self._stored_lines(conn, list(lines))
        posted, last_entry = self._posted(conn, list(lines))
        entries: list[LedgerEntry] = []
        ledger_rows: list[dict[str, Any]] = []
        outbox: list[dict[str, Any]] = []
        dirty: dict[tuple[str, str], str | None] = {}
        upserts: list[dict[str, Any]] = []
        deletes: list[LineKey] = []
        events = 0
        for key, (target, position) in lines.items():
            old = stored.get(key)
            new = line_row(target, position, now) if target is not None else None
            have = posted.get(key, Posted())
            previous = _previous_dims(old, last_entry.get(key))
            new_entries = _postings(key, have, previous, target)
            same_state = (old is None and new is None) or (
                old is not None and new is not None and all(old[f] == new[f] for f in STATE_FIELDS)
            )
            if same_state and not new_entries:
                continue  # a replay of what the ERP already holds: nothing to do
            for n, e in enumerate(new_entries):
                entries.append(e)
                ledger_rows.append(_ledger_row(e, have.entries + n, position, now))
            for e in new_entries:
                outbox.append(
                    _outbox(
                        TRANSACTIONS_TOPIC,
                        f"{key[0]}|{key[1]}",
                        transaction_record(e, position, now),
                        now,
                    )
                )
            if not same_state:
                if new is None:
                    deletes.append(key)
                else:
                    upserts.append(new)
                ev = exception_event(old, new, position, now)
                if ev is not None:
                    events += 1
                    outbox.append(_outbox(EXCEPTIONS_TOPIC, f"{key[0]}|{key[1]}", ev, now))
            for row in (old, new):
                if row is not None and row["period"] is not None:
                    dirty[(row["project_id"] or "", row["period"])] = position
            for e in new_entries:
                if e.period is not None:
                    dirty[(e.project_id or "", e.period)] = position

        if ledger_rows:
            conn.execute(insert(t.erp_billing_transactions), ledger_rows)
        self._write_lines(conn, upserts, deletes)
        n_sched = self._write_schedule(conn, sched)
        if outbox:
            conn.execute(insert(t.billing_outbox), outbox)
        self._mark_dirty(conn, dirty)
        return BatchResult(len(upserts) + len(deletes), tuple(entries), events, n_sched)

    def _stored_lines(self, conn: Connection, keys: list[LineKey]) -> dict[LineKey, dict[str, Any]]:
        out: dict[LineKey, dict[str, Any]] = {}
        wanted = set(keys)
        for chunk in _chunks(sorted({k[1] for k in keys})):
            rows = conn.execute(
                select(t.billing_line_state).where(t.billing_line_state.c.source_id.in_(chunk))
            ).mappings()
            for r in rows:
                k = (r["source_type"], r["source_id"])
                if k in wanted:
                    out[k] = dict(r)
        return out

    def _posted(
        self, conn: Connection, keys: list[LineKey]
    ) -> tuple[dict[LineKey, Posted], dict[LineKey, dict[str, Any]]]:
        """Per item: what the ledger holds, and its newest entry (the dims it was posted with)."""
        out: dict[LineKey, Posted] = {}
        last: dict[LineKey, dict[str, Any]] = {}
        wanted = set(keys)
        tx = t.erp_billing_transactions
        for chunk in _chunks(sorted({k[1] for k in keys})):
            rows = conn.execute(
                select(tx).where(tx.c.source_id.in_(chunk)).order_by(tx.c.seq)
            ).mappings()
            for r in rows:
                k = (r["source_type"], r["source_id"])
                if k in wanted:
                    p = out.get(k, Posted())
                    out[k] = Posted(
                        p.amount + r["amount"], p.tax_amount + r["tax_amount"], p.entries + 1
                    )
                    last[k] = dict(r)
        return out, last

    def _write_lines(
        self, conn: Connection, upserts: list[dict[str, Any]], deletes: list[LineKey]
    ) -> None:
        s = t.billing_line_state
        by_type: dict[str, list[str]] = {}
        for st, sid in [(r["source_type"], r["source_id"]) for r in upserts] + deletes:
            by_type.setdefault(st, []).append(sid)
        for st, ids in by_type.items():  # one DELETE per chunk, not one per line
            for chunk in _chunks(ids):
                conn.execute(delete(s).where(s.c.source_type == st, s.c.source_id.in_(chunk)))
        if upserts:
            conn.execute(insert(s), upserts)

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
        for project_id, period in dirty:
            conn.execute(delete(d).where(d.c.project_id == project_id, d.c.period == period))
        if dirty:
            conn.execute(
                insert(d),
                [
                    {"project_id": p, "period": per, "source_position": pos}
                    for (p, per), pos in dirty.items()
                ],
            )


# the dimensions that place an entry in reconciliation: a change of one of them is posted as
# a reversal under the old dimensions and a charge under the new ones, so per-(project,
# period) ledger sums stay right (an adjustment would leave the old period's charge behind)
PLACEMENT = ("project_id", "period", "contract_id", "currency")


def _postings(
    key: LineKey, have: Posted, previous: LineTarget | None, target: LineTarget | None
) -> tuple[LedgerEntry, ...]:
    moved = (
        previous is not None
        and target is not None
        and (have.amount != 0 or have.tax_amount != 0)
        and any(getattr(previous, f) != getattr(target, f) for f in PLACEMENT)
    )
    if not moved:
        return postings(key[0], key[1], have, target, previous=previous)
    reversal = postings(key[0], key[1], have, None, previous=previous)
    after = have
    for e in reversal:
        after = after.plus(e)
    return reversal + postings(key[0], key[1], after, target, previous=previous)


def _ledger_row(
    entry: LedgerEntry, seq: int, position: str | None, now: datetime
) -> dict[str, Any]:
    """An erp_billing_transactions row: the entry, its sequence number for the item, where."""
    row = {f: getattr(entry, f) for f in LedgerEntry.__slots__}
    row.update(seq=seq, source_position=position, created_at=now)
    return row


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
