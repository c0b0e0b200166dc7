"""``billsync bench writer``: one ERP batch with a small and with a large ledger.

The ERP writer reads, per batch, what the ERP holds for the batch's items (line state and
ledger entries). Those reads must use the indexes' full key (source_type, source_id): then a
batch costs the same whatever the ledger's size. This bench shows it, in one run:

1. for each size (``small``, then ``large`` ledger rows — 10k and 5M by default) a fresh ERP
   is filled with synthetic billed timesheet items: two ledger entries each (a charge and an
   adjustment) and their ``billing_line_state`` rows (bulk inserts, not timed);
2. ``repeat`` batches of ``batch`` emissions per size are applied with
   :meth:`~sinks.erp.writer.ErpWriter.apply` and timed, the two sizes alternating (so
   background load weighs on both alike): half change items already in the ledger (an
   adjustment each), half bill new items (a charge each), each batch different, each with
   its input progress (``billing_progress``, as the sink writes it);
3. it prints the median batch time per size and their ratio (target: at most 1.5).

The ERP is SQLite in a temporary directory by default. With ``--on-erp`` it is the PostgreSQL
database of ``ERP_DB_URL``, in a throwaway schema (``billsync_bench_<pid>``, dropped at the
end): the ERP's own tables are not touched. Only ``ErpWriter.apply`` is timed (one database
transaction per batch); reconciliation snapshots are not part of it.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, text

from dataflows.billing.target import LineTarget, LineUpdate, SourceType, State
from dataflows.emissions import Covers, Emission
from sinks.erp import tables as t
from sinks.erp.writer import ErpWriter

NOW = datetime(2026, 4, 1, tzinfo=UTC)
HOURS = Decimal("8.00")
RATE = Decimal("120.00")
ZERO = Decimal("0.00")
FULL, HALF = Decimal("960.00"), Decimal("480.00")
FULL_TAX, HALF_TAX = Decimal("192.00"), Decimal("96.00")
_LOAD_CHUNK = 20_000
TARGET_RATIO = 1.5


def _target(item: int, billed: Decimal) -> LineTarget:
    """A billed timesheet line; ``item`` picks its project (200) and period (12)."""
    month = item % 12 + 1
    return LineTarget(
        source_type=SourceType.TIMESHEET,
        source_id=_sid(item),
        state=State.BILLED,
        reason=None,
        contract_id=f"C{item % 50}",
        project_id=f"P{item % 200}",
        period=f"2025-{month:02d}",
        billable_amount=billed,
        billed_amount=billed,
        tax_amount=(billed * Decimal("0.20")).quantize(Decimal("0.01")),
        currency="EUR",
        erp_customer_id=f"CUST-{item % 50}",
        legal_entity="UK-LTD",
        erp_item_code="SVC-CON",
        revenue_account="4010",
        cost_center="CC-10",
        work_date=date(2025, month, 1 + item % 28),
        hours=HOURS,
        rate=RATE,
        billable=True,
    )


# columns the loaded rows leave to their default (not final; posted into their own period)
_DEFAULTS: dict[str, Any] = {"final": False, "final_period": None, "posting_period": None}


def _sid(item: int) -> str:
    """Zero-padded, so item order is key order (the bulk load appends to the indexes)."""
    return f"{item:09d}"


def _processors(engine: Engine, table: Table) -> dict[str, Callable[[Any], Any]]:
    """Each column's bind processor on this dialect (Money as text on SQLite, ...)."""
    out: dict[str, Callable[[Any], Any]] = {}
    for c in table.columns:
        proc = c.type.dialect_impl(engine.dialect).bind_processor(engine.dialect)
        out[c.name] = proc if proc is not None else (lambda v: v)
    return out


def _rows(item: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """What the ERP holds for ``item``: a charge of 960.00 and an adjustment to 480.00 (two
    ledger rows), and its line state."""
    tgt = _target(item, HOURS * RATE / 2)
    sid = _sid(item)
    common = {
        "source_type": "timesheet",
        "source_id": sid,
        "contract_id": tgt.contract_id,
        "project_id": tgt.project_id,
        "erp_customer_id": tgt.erp_customer_id,
        "legal_entity": tgt.legal_entity,
        "erp_item_code": tgt.erp_item_code,
        "revenue_account": tgt.revenue_account,
        "cost_center": tgt.cost_center,
        "work_date": tgt.work_date,
        "period": tgt.period,
        "hours": HOURS,
        "rate": RATE,
        "currency": "EUR",
        "created_at": NOW,
    }
    ledger = [
        {**common, "transaction_id": f"bench-{sid}-{seq}", "seq": seq, "amount": amount,
         "tax_amount": tax, "entry_type": kind, "source_position": f"bench:{sid}:{seq}"}
        for seq, (kind, amount, tax) in enumerate(
            (("charge", FULL, FULL_TAX), ("adjustment", -HALF, -HALF_TAX))
        )
    ]  # fmt: skip
    state = {
        "source_type": "timesheet",
        "source_id": sid,
        "state": "billed",
        "reason": None,
        "contract_id": tgt.contract_id,
        "project_id": tgt.project_id,
        "period": tgt.period,
        "billable_amount": HALF,
        "billed_amount": HALF,
        "held_amount": ZERO,
        "tax_amount": HALF_TAX,
        "covered_hours": ZERO,
        "currency": "EUR",
        "hours": HOURS,
        "billable": True,
        "source_position": f"bench:{sid}:1",
        "updated_at": NOW,
    }
    return ledger, state


# _target's dimensions repeat with item % VARIANTS (projects 200, contracts and customers 50,
# months 12, days 28): rows are built from processed templates, only the keys vary
VARIANTS = 4200
_UNIQUE = ("transaction_id", "source_id", "source_position")


def fill(engine: Engine, rows: int, progress: Callable[[int], None] = lambda _n: None) -> int:
    """Load ``rows`` ledger rows (``rows // 2`` items, in key order) and their line states
    with the driver's executemany; values go through each column's bind processor (exactly
    what the writer would store). Returns the number of items."""
    items = max(rows // 2, 1)
    ErpWriter(engine).ensure_schema()
    plans = []
    for n, table in enumerate((t.erp_billing_transactions, t.billing_line_state)):
        names = [c.name for c in table.columns]
        procs = _processors(engine, table)
        marks = ", ".join("?" if engine.dialect.paramstyle == "qmark" else "%s" for _ in names)
        sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({marks})"  # noqa: S608  # our own table and column names
        templates = []
        for v in range(min(VARIANTS, items)):
            ledger, state = _rows(v)
            for r in ledger if n == 0 else [state]:
                templates.append([procs[c](r.get(c, _DEFAULTS.get(c))) for c in names])
        unique = [names.index(c) for c in _UNIQUE if c in names]
        plans.append((sql, templates, unique, len(templates) // min(VARIANTS, items)))
    per_chunk = _LOAD_CHUNK // 2
    for start in range(0, items, per_chunk):
        ids = range(start, min(start + per_chunk, items))
        with engine.begin() as conn:
            _fast_load(conn)
            for sql, templates, unique, per_item in plans:
                values = []
                for i in ids:
                    ledger_keys, state_keys = _keys(i)
                    for seq, keys in enumerate(ledger_keys if per_item == 2 else [state_keys]):
                        row = templates[(i % VARIANTS) * per_item + seq].copy()
                        for at, value in zip(unique, keys, strict=True):
                            row[at] = value
                        values.append(tuple(row))
                conn.exec_driver_sql(sql, values)
        progress(len(ids) * 2)
    return items


def _fast_load(conn: Connection) -> None:
    """SQLite: a large page cache and no fsync for the (untimed) load only; both are
    connection settings, reset below before the timed batches run."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA cache_size = -262144")
        conn.exec_driver_sql("PRAGMA synchronous = OFF")


def _keys(item: int) -> tuple[list[tuple[str, str, str]], tuple[str, str]]:
    """The per-item values of :func:`_rows` (in :data:`_UNIQUE` order, as each table has them)."""
    sid = _sid(item)
    ledger = [(f"bench-{sid}-{seq}", sid, f"bench:{sid}:{seq}") for seq in (0, 1)]
    return ledger, (sid, f"bench:{sid}:1")


def _batch(items: int, size: int, round_: int) -> list[Emission]:
    """``size`` emissions: half adjust existing items, half charge new ones (per round)."""
    out = []
    step = max(items // max(size // 2, 1), 1)
    for k in range(size // 2):  # existing items, spread over the whole ledger
        item = (k * step + round_) % items
        new = _target(item, Decimal("700.00") + round_)
        out.append(Emission(LineUpdate(new.key, None, new), f"bench:r{round_}:{k}"))
    for k in range(size - size // 2):  # items the ledger has never seen
        item = items + round_ * size + k
        new = _target(item, HOURS * RATE)
        out.append(Emission(LineUpdate(new.key, None, new), f"bench:r{round_}:n{k}"))
    return out


def _covers(round_: int) -> Covers:
    """The input progress a batch records, as the sink passes it (one billing_progress row
    per partition, moved on every batch): a round is one offset further on three partitions."""
    return tuple((f"bench.{p}:0", round_) for p in ("psa", "crm", "erp"))


def _timed(writer: ErpWriter, batch: list[Emission], round_: int) -> float:
    began = time.perf_counter()
    result = writer.apply(batch, covers=_covers(round_))
    seconds = time.perf_counter() - began
    assert len(result.entries) == len(batch), "every emission of the bench posts one entry"
    return seconds


@contextmanager
def _sqlite(tmp: Path, name: str) -> Iterator[Engine]:
    engine = create_engine(f"sqlite:///{tmp / name}.sqlite3")
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _pg_schema(url: str, name: str) -> Iterator[Engine]:
    """A throwaway schema of the PostgreSQL ERP database: the ERP's own tables stay as they are."""
    schema = f"billsync_bench_{os.getpid()}_{name}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = create_engine(url, connect_args={"options": f"-csearch_path={schema}"})
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_writer(
    small: int,
    large: int,
    *,
    batch: int = 500,
    repeat: int = 5,
    pg_url: str | None = None,
    say: Callable[[str], None] = lambda _m: None,
    progress: Callable[[int], None] = lambda _n: None,
) -> dict[str, Any]:
    """Median batch time with ``small`` and with ``large`` ledger rows, and their ratio.

    Both ERPs are loaded first, then their batches alternate (small, large, small, ...), so
    whatever else the machine does weighs on both sizes alike."""
    sizes: list[dict[str, Any]] = []
    timed: list[tuple[ErpWriter, int, list[float]]] = []
    with tempfile.TemporaryDirectory(prefix="billsync-bench-writer-") as tmp, ExitStack() as stack:
        for label, rows in (("small", small), ("large", large)):
            erp = _pg_schema(pg_url, label) if pg_url else _sqlite(Path(tmp), label)
            engine = stack.enter_context(erp)
            began = time.perf_counter()
            items = fill(engine, rows, progress)
            engine.dispose()  # the timed batches use fresh connections, default settings
            load_s = time.perf_counter() - began
            say(f"{label}: {rows} ledger rows loaded in {load_s:.1f}s")
            writer = ErpWriter(engine, clock=lambda: NOW)
            warm_up = repeat + 1  # caches, statements; its progress offset is below the rounds'
            writer.apply(_batch(items, batch, warm_up), covers=_covers(-1))
            timed.append((writer, items, []))
            sizes.append({"ledger_rows": rows, "batch": batch, "batches": repeat,
                          "load_s": round(load_s, 1)})  # fmt: skip
        for round_ in range(repeat):
            for writer, items, seconds in timed:
                seconds.append(_timed(writer, _batch(items, batch, round_), round_))
    for size, (_w, _i, seconds) in zip(sizes, timed, strict=True):
        size["median_ms"] = round(statistics.median(seconds) * 1000, 2)
        size["max_ms"] = round(max(seconds) * 1000, 2)
        say(f"{size['ledger_rows']} ledger rows: median batch {size['median_ms']} ms")
    ratio = sizes[1]["median_ms"] / sizes[0]["median_ms"] if sizes[0]["median_ms"] else 0.0
    return {
        "database": "postgresql" if pg_url else "sqlite",
        "sizes": sizes,
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
        "within_target": ratio <= TARGET_RATIO,
    }
