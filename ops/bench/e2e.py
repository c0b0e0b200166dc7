"""``billsync bench e2e``: source-commit-to-ERP-commit latency of approvals on the live stack.

Needs the local stack and a running ``billsync run`` on the same ``ERP_DB_URL`` (the bench
does not start one: two writers on one ERP would fight). It picks a billed timesheet line from
the ERP, reuses that line's employee and project (an active, billable project of the seed),
then inserts timesheet rows already ``approved`` into the PSA at ``rate`` rows per second for
``seconds`` seconds, committing every ``tick_s``, and polls the ERP every ``poll_s``.

Both ends are PostgreSQL commit timestamps of the same server (``track_commit_timestamp =
on``, set by the stack and docker-compose; PSA and ERP are two databases of one server, so
one clock): the source side is the commit of the PSA transaction that inserted the row
(``pg_xact_commit_timestamp(xmin)``), the ERP side the commit of the writer's transaction
that wrote the row's ``billing_line_state`` (its ``xmin`` when the bench first sees the row;
a new line is written once unless a later change rewrites it within one poll). Latency =
ERP commit - PSA commit: Debezium, Kafka, the flow, the writer's batch and its commit, and
nothing of the bench's polling — so the bench polls only every ``poll_s`` (0.5 s), which
keeps its own load on the machine small (polling every 50 ms made the bench itself the
second busiest process on 2 vCPU). Lag = rows committed but not yet committed in the ERP.
Afterwards the bench deletes its rows (the flow posts the reversals) unless ``keep``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, column, create_engine, delete, func, insert, select
from sqlalchemy.exc import DBAPIError

from billsync.errors import StackError
from billsync.settings import Settings
from connectors.sources import timesheets
from sinks.erp.tables import billing_line_state

NOTE = "bench-e2e"
# the commit timestamp of the transaction that last wrote a row (track_commit_timestamp = on)
_COMMITTED_AT = func.pg_xact_commit_timestamp(column("xmin"))


def _require_commit_timestamps(engine: Engine, name: str) -> None:
    """Refuse clearly when the server does not record commit timestamps."""
    try:
        with engine.connect() as conn:
            on = conn.execute(select(func.current_setting("track_commit_timestamp"))).scalar()
    except DBAPIError as exc:
        raise StackError(name, f"bench e2e needs PostgreSQL: {exc.orig}") from None
    if on != "on":
        raise StackError(
            name,
            "track_commit_timestamp is off: bench e2e measures PostgreSQL commit timestamps; "
            "restart the stack (`billsync stack down && billsync stack up`, or docker compose "
            "up -d), which sets it",
        )


def _pick_line(psa: Engine, erp: Engine) -> tuple[str, str]:
    with erp.connect() as conn:
        ids = conn.execute(
            select(billing_line_state.c.source_id)
            .where(billing_line_state.c.source_type == "timesheet")
            .where(billing_line_state.c.state == "billed")
            .limit(50)
        ).scalars()
        candidates = [int(i) for i in ids if i.isdigit()]
    if not candidates:
        raise StackError(
            "erp",
            "no billed timesheet line in billing_line_state: seed the sources "
            "(`billsync db seed`) and start `billsync run`, then run the bench again",
        )
    with psa.connect() as conn:
        row = conn.execute(
            select(timesheets.c.employee_id, timesheets.c.project_id).where(
                timesheets.c.timesheet_id.in_(candidates)
            )
        ).first()
    if row is None:
        raise StackError("psa", "the ERP's billed lines are not in the PSA: is ERP_DB_URL right?")
    return str(row.employee_id), str(row.project_id)


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def run_e2e(
    settings: Settings,
    rate: int,
    seconds: float,
    *,
    tick_s: float = 0.05,
    poll_s: float = 0.5,
    drain_s: float = 30.0,
    keep: bool = False,
    say: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    psa = create_engine(settings.require("psa_db_url"))
    erp = create_engine(settings.require("erp_db_url"))
    _require_commit_timestamps(psa, "psa")
    _require_commit_timestamps(erp, "erp")
    employee_id, project_id = _pick_line(psa, erp)
    with psa.connect() as conn:
        top = conn.execute(select(func.max(timesheets.c.timesheet_id))).scalar() or 0
    base = int(top) + 1_000_000
    committed: dict[str, datetime] = {}
    seen: dict[str, datetime] = {}
    total = int(rate * seconds)
    say(f"inserting {total} approved lines into project {project_id} at {rate}/s")

    def poll() -> None:
        waiting = [k for k in committed if k not in seen]
        for i in range(0, len(waiting), 5000):
            with erp.connect() as conn:
                for sid, at in conn.execute(
                    select(billing_line_state.c.source_id, _COMMITTED_AT)
                    .where(billing_line_state.c.source_type == "timesheet")
                    .where(billing_line_state.c.source_id.in_(waiting[i : i + 5000]))
                ):
                    seen[str(sid)] = at

    began = time.monotonic()
    next_poll = began + poll_s
    sent = 0
    work = date.today()  # noqa: DTZ011  # a work date; the flow bills by calendar day
    while sent < total:
        due = min(total, int((time.monotonic() - began) * rate) + 1)
        if due > sent:
            now = datetime.now(UTC)
            rows = [
                {"timesheet_id": base + i, "employee_id": employee_id, "project_id": project_id,
                 "work_date": work, "hours": Decimal("1.00"), "billable": True,
                 "status": "approved", "approved_at": now, "notes": NOTE}
                for i in range(sent, due)
            ]  # fmt: skip
            with psa.begin() as conn:
                conn.execute(insert(timesheets), rows)
            with psa.connect() as conn:
                for tid, at in conn.execute(
                    select(timesheets.c.timesheet_id, _COMMITTED_AT).where(
                        timesheets.c.timesheet_id.between(base + sent, base + due - 1)
                    )
                ):
                    committed[str(tid)] = at
            sent = due
        if time.monotonic() >= next_poll:
            poll()
            next_poll = time.monotonic() + poll_s
        time.sleep(max(0.0, tick_s - (time.monotonic() - began) % tick_s))
    load_s = time.monotonic() - began
    deadline = time.monotonic() + drain_s
    while len(seen) < len(committed) and time.monotonic() < deadline:
        time.sleep(poll_s)
        poll()
    latencies = [(seen[k] - committed[k]).total_seconds() for k in seen]
    # lag: committed and not yet in the ERP, evaluated at every commit and ERP-row instant
    marks = sorted([(t, 1) for t in committed.values()] + [(t, -1) for t in seen.values()])
    lag = peak = 0
    for _t, d in marks:
        lag += d
        peak = max(peak, lag)
    if not keep:
        with psa.begin() as conn:
            conn.execute(delete(timesheets).where(timesheets.c.timesheet_id >= base))
    return {
        "rate_per_s": rate,
        "seconds": seconds,
        "achieved_rate_per_s": round(sent / load_s, 1) if load_s else None,
        "committed": len(committed),
        "in_erp": len(seen),
        "missing": len(committed) - len(seen),
        "latency_p50_s": round(_pct(latencies, 50), 3),
        "latency_p95_s": round(_pct(latencies, 95), 3),
        "latency_p99_s": round(_pct(latencies, 99), 3),
        "latency_max_s": round(max(latencies), 3) if latencies else None,
        "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
        "peak_lag_rows": peak,
        "measured": "PostgreSQL commit timestamps: PSA insert commit to ERP write commit",
        "project_id": project_id,
        "targets": {"latency_p99_s": 1.0, "at_rate_per_s": 1000},
    }
