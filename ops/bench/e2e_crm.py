"""``billsync bench e2e --source crm``: CRM-commit-to-ERP-commit latency of rate changes.

The PSA bench (:mod:`ops.bench.e2e`) measures approvals, one line each. A CRM change is
different: one rate change re-evaluates every line of its contract and labor category (a
fan-out), and it comes through the other connector (MariaDB binlog). Needs the local stack
and a running ``billsync run`` on the same ``ERP_DB_URL``.

The bench picks a billed timesheet line of an active time-and-materials or retainer contract
(``--contract`` to choose it), inserts a probe: an approved timesheet of one hour on that
line's employee and project, dated today, approved now, and waits until the ERP bills it
with nothing covered by a retainer (the latest approval of its month comes last in the
retainer's order, so a retainer whose month is used up covers none of it); its billable
amount is then the rate. Then it sets the rate row that prices the probe (the contract's
rate for the employee's labor category in force today) to a new value ``rate`` times per
second for ``seconds`` seconds, each value unique and rising (the original + k cents), and
waits until the probe's ERP line holds the last one (polled every ``poll_s``).

Every change is one sample, read from the probe's ledger afterwards: the ERP posts the
probe's difference in each writer transaction that changed it, so the running sum of its
entries is the value the ERP held after each of those commits. Change k's latency = the
PostgreSQL commit timestamp (``track_commit_timestamp``) of the first entry after which the
ERP held value k or a later one — a change overtaken by the next before the ERP posted it
counts as done when the later one was posted, which is when the ERP stopped being behind
it — minus the time the bench's MariaDB ``COMMIT`` of change k returned (MariaDB keeps no
commit timestamps; the return is at most the commit call's duration after the commit, so a
sample is that much short). Both clocks are this host's (the stack and docker-compose run
on one host). Afterwards the rate is set back and the probe deleted (the flow posts the
reversals) unless ``keep``.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, create_engine, delete, func, insert, or_, select, update

from billsync.errors import StackError
from billsync.settings import Settings
from connectors.sources import contract_rates, contracts, employees, projects, timesheets
from ops.bench.e2e import _COMMITTED_AT, _pct, _require_commit_timestamps
from sinks.erp.tables import billing_line_state, erp_billing_transactions

NOTE = "bench-e2e-crm"
CENT = Decimal("0.01")


def _probe_target(
    psa: Engine, crm: Engine, erp: Engine, contract_id: str | None
) -> tuple[str, str, str, str]:
    """(employee, project, contract, rate_id) of a billed line of an active time-and-materials
    or retainer contract (``contract_id`` if given) whose employee's category has exactly
    one rate in force today."""
    today = date.today()  # noqa: DTZ011  # the probe's work date, a calendar day
    query = (
        select(billing_line_state.c.source_id, billing_line_state.c.contract_id)
        .where(billing_line_state.c.source_type == "timesheet")
        .where(billing_line_state.c.state == "billed")
        .limit(500)
    )
    if contract_id is not None:
        query = query.where(billing_line_state.c.contract_id == contract_id)
    with erp.connect() as conn:
        billed = conn.execute(query).all()
    with crm.connect() as conn:
        tm = set(
            conn.execute(
                select(contracts.c.contract_id).where(
                    contracts.c.contract_type.in_(("time_and_materials", "retainer")),
                    contracts.c.status == "active",
                )
            ).scalars()
        )
    for source_id, line_contract in billed:
        if line_contract not in tm or not str(source_id).isdigit():
            continue
        with psa.connect() as conn:
            row = conn.execute(
                select(
                    timesheets.c.employee_id, timesheets.c.project_id, employees.c.labor_category
                )
                .join(employees, employees.c.employee_id == timesheets.c.employee_id)
                .join(projects, projects.c.project_id == timesheets.c.project_id)
                .where(timesheets.c.timesheet_id == int(source_id))
                .where(projects.c.status == "active", projects.c.contract_id == line_contract)
            ).first()
        if row is None:
            continue
        with crm.connect() as conn:
            rates = conn.execute(
                select(contract_rates.c.rate_id).where(
                    contract_rates.c.contract_id == line_contract,
                    contract_rates.c.labor_category == row.labor_category,
                    contract_rates.c.effective_from <= today,
                    or_(contract_rates.c.effective_to.is_(None),
                        contract_rates.c.effective_to >= today),
                )
            ).scalars().all()  # fmt: skip
        if len(rates) == 1:
            return row.employee_id, row.project_id, line_contract, rates[0]
    if contract_id is not None:
        raise StackError("erp", f"contract {contract_id}: no billed line of it as an active "
                         "time-and-materials or retainer contract with one rate in force today "
                         "for the line's labor category")  # fmt: skip
    raise StackError(
        "erp",
        "no billed line of an active time-and-materials or retainer contract with one rate in "
        "force today: seed the sources (`billsync db seed`), start `billsync run`, then run "
        "the bench again",
    )


def _probe_state(erp: Engine, probe: int) -> tuple[Decimal, datetime] | None:
    """The probe line's rate (its billable amount for one uncovered hour) and the commit
    time of the ERP transaction that wrote it."""
    with erp.connect() as conn:
        row = conn.execute(
            select(billing_line_state.c.billable_amount, billing_line_state.c.covered_hours,
                   _COMMITTED_AT)
            .where(billing_line_state.c.source_type == "timesheet")
            .where(billing_line_state.c.source_id == str(probe))
        ).first()  # fmt: skip
    if row is None or row[1] != 0:
        return None
    return Decimal(row[0]), row[2]


def ledger_latencies(
    entries: Sequence[tuple[int, Decimal, datetime]],
    original: Decimal,
    commits: Sequence[datetime],
    after_seq: int = -1,
) -> list[float]:
    """Per change k (``commits[k-1]``: its COMMIT returned, value ``original`` + k cents), the
    seconds until the ERP held value k or a later one: ``entries`` are the probe item's
    ledger entries in order, (seq, amount, commit time), whose running sum is the value the
    ERP held (module doc); only those after ``after_seq`` are this run's (the probe's id may
    have been an earlier run's probe, whose entries stay in the ledger). Changes the ERP never
    reached give no sample."""
    reached: list[tuple[Decimal, datetime]] = []  # (changes the ERP is up to, since when)
    total = Decimal(0)
    for seq, amount, at in entries:
        total += amount
        if seq > after_seq:
            reached.append(((total - original) / CENT, at))
    out = []
    i = 0
    for k, committed in enumerate(commits, 1):
        while i < len(reached) and reached[i][0] < k:
            i += 1
        if i == len(reached):
            break
        out.append((reached[i][1] - committed).total_seconds())
    return out


def _probe_entries(erp: Engine, probe: int) -> list[tuple[int, Decimal, datetime]]:
    t = erp_billing_transactions
    with erp.connect() as conn:
        rows = conn.execute(
            select(t.c.seq, t.c.amount, _COMMITTED_AT)
            .where(t.c.source_type == "timesheet", t.c.source_id == str(probe))
            .order_by(t.c.seq)
        ).all()
    return [(seq, Decimal(amount), at) for seq, amount, at in rows]


def run_crm_e2e(
    settings: Settings,
    rate: float,
    seconds: float,
    *,
    poll_s: float = 0.5,
    drain_s: float = 60.0,
    keep: bool = False,
    contract: str | None = None,
    probe_id: int | None = None,
    say: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """The bench (module doc). ``contract``: probe a line of that contract only; ``probe_id``:
    the probe timesheet's id (default: 2,000,000 above the PSA's highest), for tests with
    their own id blocks."""
    psa = create_engine(settings.require("psa_db_url"))
    crm = create_engine(settings.require("crm_db_url"))
    erp = create_engine(settings.require("erp_db_url"))
    _require_commit_timestamps(erp, "erp")
    employee_id, project_id, contract_id, rate_id = _probe_target(psa, crm, erp, contract)
    with crm.connect() as conn:
        original = Decimal(conn.execute(
            select(contract_rates.c.hourly_rate).where(contract_rates.c.rate_id == rate_id)
        ).scalar_one())  # fmt: skip
    if probe_id is None:
        with psa.connect() as conn:
            top = conn.execute(select(func.max(timesheets.c.timesheet_id))).scalar()
        probe_id = int(top or 0) + 2_000_000  # above the PSA bench's block
    probe = probe_id
    earlier = _probe_entries(erp, probe)  # an earlier run's probe of the same id
    after_seq = earlier[-1][0] if earlier else -1
    with erp.connect() as conn:
        fanout = conn.execute(
            select(func.count()).where(
                and_(billing_line_state.c.contract_id == contract_id,
                     billing_line_state.c.final.is_(False))
            )
        ).scalar_one()  # fmt: skip
    say(f"probe {probe} on contract {contract_id} (rate {rate_id} = {original}); "
        f"{fanout} open lines of the contract")  # fmt: skip
    with psa.begin() as conn:
        conn.execute(insert(timesheets), [{
            "timesheet_id": probe, "employee_id": employee_id, "project_id": project_id,
            "work_date": date.today(),  # noqa: DTZ011  # a calendar day, as the PSA's
            "hours": Decimal("1.00"), "billable": True, "status": "approved",
            "approved_at": datetime.now(UTC), "notes": NOTE}])  # fmt: skip

    def set_rate(value: Decimal) -> datetime:
        with crm.begin() as conn:
            conn.execute(
                update(contract_rates)
                .where(contract_rates.c.rate_id == rate_id)
                .values(hourly_rate=value)
            )
        return datetime.now(UTC)  # COMMIT has returned

    commits: list[datetime] = []
    latencies: list[float] = []
    try:
        deadline = time.monotonic() + drain_s
        while (state := _probe_state(erp, probe)) is None or state[0] != original:
            if time.monotonic() > deadline:
                raise StackError("erp", f"the probe line {probe} was not billed at {original} "
                                 f"uncovered within {drain_s:.0f} s: is `billsync run` running, "
                                 "and is the retainer's month used up?")  # fmt: skip
            time.sleep(poll_s)
        say(f"probe billed at {original}; changing the rate {rate}/s for {seconds:.0f}s")
        total = max(1, int(rate * seconds))
        began = time.monotonic()
        for k in range(1, total + 1):
            time.sleep(max(0.0, began + k / rate - time.monotonic()))
            commits.append(set_rate(original + k * CENT))
        load_s = time.monotonic() - began
        last = original + total * CENT
        deadline = time.monotonic() + drain_s
        while ((state := _probe_state(erp, probe)) is None or state[0] != last) and (
            time.monotonic() < deadline
        ):
            time.sleep(poll_s)
        latencies = ledger_latencies(_probe_entries(erp, probe), original, commits, after_seq)
    finally:
        set_rate(original)
        if not keep:
            with psa.begin() as conn:
                conn.execute(delete(timesheets).where(timesheets.c.timesheet_id == probe))
    return {
        "source": "crm",
        "changes_per_s": rate,
        "seconds": seconds,
        "achieved_changes_per_s": round(total / load_s, 2) if load_s else None,
        "changes": total,
        "samples": len(latencies),
        "last_change_seen": len(latencies) == total,
        "last_value": str(last),
        "fanout_open_lines": fanout,
        "latency_p50_s": round(_pct(latencies, 50), 3),
        "latency_p95_s": round(_pct(latencies, 95), 3),
        "latency_p99_s": round(_pct(latencies, 99), 3),
        "latency_max_s": round(max(latencies), 3) if latencies else None,
        "latency_mean_s": round(statistics.fmean(latencies), 3) if latencies else None,
        "measured": "MariaDB COMMIT returned (bench clock) to the commit (PostgreSQL commit "
        "timestamp) of the probe's first ledger entry at that rate or a later one",
        "contract_id": contract_id,
    }
