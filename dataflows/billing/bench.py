"""Core benchmark: engine events/s on synthetic CDC changes, and state bytes per open line.

:func:`run_core_bench` is what ``billsync bench core`` calls. The synthetic stream is a
firm's month: reference rows first (accounts, contracts of every type with caps and
retainers, projects, employees, rates), then timesheets that are created, approved
(mostly in order, some late), edited and deleted, interleaved with milestones, project
status changes, cap changes, new rates and amendments opened and approved. Deterministic
for a seed. The mix per synthetic event after the reference rows: 45% new submitted
line, 40% approval (5% of them back-dated three days: late lines that re-allocate caps and
retainers), 6% hours correction of an approved line, 2% delete of an approved line, 5%
accepted milestone, 0.5% project status flip, 1.4% cap change, 0.1% amendment opened then
approved (two changes; it holds and releases every line of its contract).
"""

from __future__ import annotations

import pickle
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from dataflows.billing.engine import BillingEngine
from dataflows.billing.mappings import Mappings, load_mappings
from dataflows.cdc.change import Change, Op, SourcePosition
from dataflows.model import (
    PSA_TABLES,
    Account,
    Contract,
    ContractAmendment,
    ContractRate,
    Employee,
    Milestone,
    Project,
    Row,
    Timesheet,
)

CATEGORIES = ("ANALYST", "CONSULTANT", "SENIOR_CONSULTANT", "MANAGER", "DEVELOPER", "ARCHITECT")
JURISDICTIONS = ("US-NY", "US-CA", "GB", "DE", "FR", "NL")


@dataclass(frozen=True)
class BenchResult:
    changes: int
    seconds: float  # wall clock
    events_per_s: float
    cpu_seconds: float  # process CPU time: the figure that does not depend on other load
    events_per_cpu_s: float
    line_updates: int
    open_lines: int
    state_bytes: int
    bytes_per_open_line: float


class _Stream:
    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)  # noqa: S311  # synthetic data, not security
        self.out: list[Change] = []

    def put(self, row: Row, op: Op = Op.CREATE) -> None:
        self.out.append(Change(row.TABLE, op, row.key, None, row, self._pos(row.TABLE)))

    def delete(self, table: str, key: str) -> None:
        self.out.append(Change(table, Op.DELETE, key, None, None, self._pos(table)))

    def _pos(self, table: str) -> SourcePosition:
        n = len(self.out)
        if table in PSA_TABLES:
            return SourcePosition("psa", lsn=n, tx_id=n)
        return SourcePosition("crm", file="mysql-bin.000001", pos=n)


def synthetic_changes(
    n: int,
    *,
    seed: int = 7,
    accounts: int = 20,
    contracts: int = 60,
    projects: int = 200,
    employees: int = 400,
) -> list[Change]:
    """``n`` changes of a synthetic firm (reference rows included in the count)."""
    s = _Stream(seed)
    rnd = s.rnd
    start = datetime(2024, 1, 1, 8, tzinfo=UTC)
    for i in range(accounts):
        j = JURISDICTIONS[i % len(JURISDICTIONS)]
        cur = "USD" if j.startswith("US") else ("GBP" if j == "GB" else "EUR")
        s.put(Account(f"A{i}", f"Client {i}", j, cur, f"CUST-{i:04d}" if i % 10 else None))
    contract_rows: list[Contract] = []
    for i in range(contracts):
        acct = i % accounts
        j = JURISDICTIONS[acct % len(JURISDICTIONS)]
        cur = "USD" if j.startswith("US") else ("GBP" if j == "GB" else "EUR")
        kind = ("time_and_materials", "time_and_materials", "retainer", "milestone")[i % 4]
        cap = (None, Decimal("250000.00"), Decimal("40000.00"))[i % 3]
        period = ("contract", "month")[i % 2]
        c = Contract(
            f"C{i}", f"A{acct}", f"K-{i}", kind, "active", cur, date(2024, 1, 1), None,
            cap, period, Decimal("80") if kind == "retainer" else None,
        )  # fmt: skip
        contract_rows.append(c)
        s.put(c)
        for k, cat in enumerate(CATEGORIES):
            rate = Decimal(90 + 25 * k) + Decimal(i % 7) / 4
            s.put(ContractRate(f"R{i}-{k}", f"C{i}", cat, rate, date(2024, 1, 1), None))
    for i in range(projects):
        s.put(Project(f"P{i}", f"PRJ-{i}", f"Project {i}", None, f"C{i % contracts}", "active",
                      "US-INC" if i % 2 else "UK-LTD"))  # fmt: skip
    for i in range(employees):
        s.put(Employee(f"E{i}", f"Emp {i}", f"e{i}@firm", CATEGORIES[i % len(CATEGORIES)],
                       f"CC-{i % 12}", "UK-LTD", True))  # fmt: skip
    open_ts: list[Timesheet] = []
    approved: list[Timesheet] = []
    next_id = 1
    clock = start
    while len(s.out) < n:
        clock += timedelta(seconds=rnd.randint(5, 90))
        roll = rnd.random()
        if roll < 0.45 or not open_ts:  # a new timesheet line, submitted
            ts = Timesheet(
                next_id, f"E{rnd.randrange(employees)}", f"P{rnd.randrange(projects)}",
                (clock - timedelta(days=rnd.randint(0, 6))).date(),
                Decimal(rnd.choice((1, 2, 4, 6, 7.5, 8))).quantize(Decimal("0.01")),
                rnd.random() < 0.9, "submitted", None, None, clock,
            )  # fmt: skip
            next_id += 1
            open_ts.append(ts)
            s.put(ts)
        elif roll < 0.85:  # approve one (a few approvals are back-dated: late lines)
            ts = open_ts.pop(rnd.randrange(len(open_ts)))
            when = clock - timedelta(days=3) if rnd.random() < 0.05 else clock
            ts = replace(ts, status="approved", approved_at=when, updated_at=clock)
            approved.append(ts)
            s.put(ts, Op.UPDATE)
        elif roll < 0.91 and approved:  # correct hours of an approved line
            k = rnd.randrange(len(approved))
            hours = min((approved[k].hours or Decimal(0)) + 1, Decimal(24))
            approved[k] = replace(approved[k], hours=hours)
            s.put(approved[k], Op.UPDATE)
        elif roll < 0.93 and approved:  # delete an approved line
            ts = approved.pop(rnd.randrange(len(approved)))
            s.delete("timesheets", ts.key)
        elif roll < 0.98:  # milestone accepted on a milestone contract
            c = contract_rows[rnd.randrange(0, contracts, 4) + 3 if contracts > 3 else 0]
            p = f"P{int(c.contract_id[1:]) % projects}"
            s.put(Milestone(f"M{len(s.out)}", p, "Phase", Decimal(rnd.randint(5, 50) * 1000),
                            clock.date(), "accepted", clock))  # fmt: skip
        elif roll < 0.985:  # a project goes on hold / back to active
            q = rnd.randrange(projects)
            status = rnd.choice(("on_hold", "active", "active"))
            s.put(Project(f"P{q}", f"PRJ-{q}", f"Project {q}", None, f"C{q % contracts}", status,
                          "US-INC" if q % 2 else "UK-LTD"), Op.UPDATE)  # fmt: skip
        elif roll < 0.999:  # a cap is raised or lowered
            k = rnd.randrange(contracts)
            c = contract_rows[k]
            if c.cap_amount is not None:
                c = replace(c, cap_amount=c.cap_amount + rnd.choice((-5000, 5000)))
                contract_rows[k] = c
                s.put(c, Op.UPDATE)
        else:  # an amendment opened, then approved
            k = rnd.randrange(contracts)
            a = ContractAmendment(f"AM{len(s.out)}", f"C{k}", "pending", clock.date())
            s.put(a)
            s.put(replace(a, status="approved"), Op.UPDATE)
    return s.out[:n]


def run_core_bench(
    n: int = 100_000,
    *,
    seed: int = 7,
    mappings: Mappings | None = None,
    progress: Callable[[int], None] | None = None,
) -> BenchResult:
    """Apply ``n`` synthetic changes to a fresh engine; measure throughput and state size."""
    changes = synthetic_changes(n, seed=seed)
    engine = BillingEngine(mappings if mappings is not None else load_mappings())
    updates = 0
    began, began_cpu = time.perf_counter(), time.process_time()
    for i, change in enumerate(changes):
        updates += len(engine.apply(change).lines)
        if progress is not None and i % 1000 == 999:
            progress(1000)
    seconds = time.perf_counter() - began
    cpu = time.process_time() - began_cpu
    state_bytes = len(pickle.dumps(engine.snapshot(), protocol=pickle.HIGHEST_PROTOCOL))
    open_lines = len(engine.lines)
    return BenchResult(
        changes=n,
        seconds=seconds,
        events_per_s=n / seconds if seconds else float("inf"),
        cpu_seconds=cpu,
        events_per_cpu_s=n / cpu if cpu else float("inf"),
        line_updates=updates,
        open_lines=open_lines,
        state_bytes=state_bytes,
        bytes_per_open_line=state_bytes / open_lines if open_lines else 0.0,
    )
