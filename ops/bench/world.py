"""A synthetic firm and its change stream, deterministic for a seed.

Reference rows first (accounts, contracts of every type — some capped per month or per
contract, some retainers — six rates per contract, projects, employees), then a working
day's mix, repeated: timesheet lines created (submitted), approved, corrected, deleted, and
now and then a project put on hold and released, a milestone accepted, a cap moved, a rate
changed, an amendment opened and later approved, an employee moved to another cost center;
optionally each month closed two months after it (:func:`change_stream`). :data:`MIX` is the
share of each kind of change after the reference rows (closes come on top).

:func:`open_lines_stream` and :func:`history_stream` build state rather than traffic: N
approved lines all open, or N lines month by month with all but the last months closed.

The firm is the demo data's (``ops/sourcedb/generate.py``) in what they share: labor
categories and their base rates, the mapped tax jurisdictions with their currencies, the
legal entities. Its rows are its own, because the two serve different ends: the demo seeds
the source databases with a realistic firm in which every rule of SPEC 2 fires at the rates
of the README's "demo data" table, sized by drawing, in a fixed six-month window; the bench
needs a firm in which every approved line bills (it measures billing, not exceptions), of
exact sizes (:class:`Scale`), its rows named by index (``P{i}``, ``C{i}``, ``R{i}-{k}``) so
that a stream of any length picks them by number, on a clock of its own.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from billsync.model import (
    Account,
    AccountingPeriod,
    Contract,
    ContractAmendment,
    ContractRate,
    Employee,
    Milestone,
    Project,
    Row,
    Timesheet,
)
from ops.sourcedb.generate import BASE_RATES, JURISDICTIONS, LABOR_CATEGORIES

# the demo's categories but its rarest, PARTNER: six rates a contract
CATEGORIES = tuple(c for c in LABOR_CATEGORIES if c != "PARTNER")
_ENTITY = {j.code: j.legal_entity for j in JURISDICTIONS}
US, UK = _ENTITY["US-NY"], _ENTITY["GB"]  # the legal entities of the firm's projects and people
START = datetime(2026, 1, 5, 8, tzinfo=UTC)

# (kind, share of the changes after the reference rows); shares add up to 1
MIX: tuple[tuple[str, float], ...] = (
    ("timesheet submitted", 0.455),
    ("timesheet approved", 0.455),
    ("approved timesheet corrected", 0.045),
    ("approved timesheet deleted", 0.020),
    ("project on hold / released", 0.008),
    ("milestone accepted", 0.005),
    ("employee cost center moved", 0.003),
    ("contract cap moved", 0.002),
    ("contract rate changed", 0.002),
    ("amendment opened / approved", 0.004),
    ("account changed", 0.001),
)

Event = tuple[str, Row | None, Row | None]  # (op, before, after)
# `bench core`'s pace: a simulated month every 5,000 events (time compressed, ~2,200
# approvals a month), so 20,000 events span four months and 200,000 forty.
MONTH_EVENTS = 5_000


@dataclass(frozen=True)
class Scale:
    """Sizes of the reference world."""

    accounts: int = 40
    contracts: int = 150
    projects: int = 500
    employees: int = 1000

    @staticmethod
    def for_lines(lines: int) -> Scale:
        """A firm big enough for ``lines`` open lines (about 40 lines per project-month)."""
        k = max(1, lines // 100_000)
        return Scale(accounts=40 * k, contracts=150 * k, projects=500 * k, employees=1000 * k)


def reference_rows(scale: Scale) -> list[Row]:
    """Accounts, contracts, rates, projects and employees: every row billable when approved."""
    out: list[Row] = []
    for i in range(scale.accounts):
        j = JURISDICTIONS[i % len(JURISDICTIONS)]
        out.append(Account(f"A{i}", f"Client {i}", j.code, j.currency, f"CUST-{i:05d}", START))
    for i in range(scale.contracts):
        acct = i % scale.accounts
        cur = JURISDICTIONS[acct % len(JURISDICTIONS)].currency
        kind = ("time_and_materials", "time_and_materials", "time_and_materials", "retainer",
                "milestone")[i % 5]  # fmt: skip
        cap = Decimal("400000.00") if i % 3 == 1 else None
        period = "contract" if i % 9 == 1 else "month"
        retainer = Decimal("120.00") if kind == "retainer" else None
        out.append(Contract(f"C{i}", f"A{acct}", f"K-{i:05d}", kind, "active", cur,
                            date(2025, 1, 1), None, cap, period, retainer, START))  # fmt: skip
        for k, cat in enumerate(CATEGORIES):
            rate = Decimal(BASE_RATES[cat]) + Decimal(i % 7) / 4
            out.append(ContractRate(f"R{i}-{k}", f"C{i}", cat, rate, date(2025, 1, 1), None))
    for i in range(scale.projects):
        # milestone contracts bill milestones only: give projects mostly billable-by-time ones
        c = i % scale.contracts
        out.append(Project(f"P{i}", f"PRJ-{i:05d}", f"Project {i}", f"A{c % scale.accounts}",
                           f"C{c}", "active", US if i % 2 else UK, START))  # fmt: skip
    for i in range(scale.employees):
        out.append(Employee(f"E{i}", f"Employee {i}", f"e{i}@firm.example",
                            CATEGORIES[i % len(CATEGORIES)], f"CC-{i % 12:02d}",
                            UK if i % 3 else US, True, START))  # fmt: skip
    return out


def period_of(day: date) -> str:
    """The accounting period (``YYYY-MM``) of a day."""
    return f"{day.year:04d}-{day.month:02d}"


def _month_start(first: date, months: int) -> date:
    """The first day of the month ``months`` after ``first``'s month."""
    k = first.year * 12 + first.month - 1 + months
    return date(k // 12, k % 12 + 1, 1)


def _close(period: str, at: datetime) -> Event:
    """Finance closes ``period`` at ``at`` (``billsync periods close``, as captured)."""
    return ("c", None, AccountingPeriod(period, "closed", at, "bench"))


def change_stream(
    n: int,
    *,
    seed: int = 7,
    scale: Scale | None = None,
    month_events: int | None = None,
    closes: bool = False,
) -> Iterator[Event]:
    """``n`` changes (reference rows included) of a firm at work.

    The clock moves 9 s an event (about a thousand lines a working day), or, with
    ``month_events``, a month every ``month_events`` events (time compressed, so that a
    short stream spans months). With ``closes``, each month is closed (an
    ``accounting_periods`` row created with status ``closed``, an event of the stream like
    any other) once the clock has moved two months past it: January when March begins.
    """
    sc = scale or Scale()
    step = timedelta(days=30) / month_events if month_events else timedelta(seconds=9)
    rnd = random.Random(seed)  # noqa: S311  # synthetic data, not security
    emitted = 0
    rows = reference_rows(sc)
    for row in rows[:n]:
        yield ("r", None, row)
        emitted += 1
    contracts = [r for r in rows if isinstance(r, Contract)]
    projects = {r.project_id: r for r in rows if isinstance(r, Project)}
    employees = [r for r in rows if isinstance(r, Employee)]
    accounts = [r for r in rows if isinstance(r, Account)]
    rates = {r.rate_id: r for r in rows if isinstance(r, ContractRate)}
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    submitted: list[Timesheet] = []
    approved: list[Timesheet] = []
    pending: list[ContractAmendment] = []
    on_hold: list[str] = []  # project ids, oldest hold first
    clock = START
    next_close = _month_start(START.date(), 0)  # no line is dated before START's month
    next_id = 1
    while emitted < n:
        clock += step
        while closes and emitted < n and next_close <= _month_start(clock.date(), -2):
            yield _close(period_of(next_close), clock)
            emitted += 1
            next_close = _month_start(next_close, 1)
        if emitted >= n:
            break
        kind = rnd.choices(kinds, weights)[0]
        event: Event | None = None
        if kind == "timesheet submitted" or (kind == "timesheet approved" and not submitted):
            emp = employees[rnd.randrange(len(employees))]
            ts = Timesheet(next_id, emp.employee_id, f"P{rnd.randrange(sc.projects)}",
                           (clock - timedelta(days=rnd.randint(0, 4))).date(),
                           Decimal(rnd.choice(("1.00", "2.00", "4.00", "6.50", "8.00"))),
                           rnd.random() < 0.92, "submitted", None, None, clock)  # fmt: skip
            next_id += 1
            submitted.append(ts)
            event = ("c", None, ts)
        elif kind == "timesheet approved":
            old = submitted.pop(rnd.randrange(len(submitted)) if rnd.random() < 0.2 else 0)
            new = replace(old, status="approved", approved_at=clock, updated_at=clock)
            approved.append(new)
            event = ("u", old, new)
        elif kind == "approved timesheet corrected" and approved:
            k = rnd.randrange(len(approved))
            old = approved[k]
            hours = min((old.hours or Decimal(0)) + Decimal("0.50"), Decimal("12.00"))
            approved[k] = replace(old, hours=hours, notes="corrected", updated_at=clock)
            event = ("u", old, approved[k])
        elif kind == "approved timesheet deleted" and approved:
            old = approved.pop(rnd.randrange(len(approved)))
            event = ("d", old, None)
        elif kind == "project on hold / released":
            # like amendments, a hold is released in turn: the number of projects on hold
            # stays small however long the stream (their lines are held, carried forward by
            # every close, and would otherwise pile up in the open state)
            if on_hold and rnd.random() < 0.5:
                p = projects[on_hold.pop(0)]
                status = "active"
            else:
                p = projects[f"P{rnd.randrange(sc.projects)}"]
                status = "active" if p.status == "on_hold" else "on_hold"
                if status == "on_hold":
                    on_hold.append(p.project_id)
                else:
                    on_hold.remove(p.project_id)
            projects[p.project_id] = replace(p, status=status, updated_at=clock)
            event = ("u", p, projects[p.project_id])
        elif kind == "milestone accepted":
            c = 4 + 5 * rnd.randrange(max(1, sc.contracts // 5))  # a milestone contract
            amount = Decimal(rnd.randint(5, 50) * 1000)
            ms = Milestone(f"M{emitted}", f"P{c % sc.projects}", "Phase", amount,
                           clock.date(), "accepted", clock, clock)  # fmt: skip
            event = ("c", None, ms)
        elif kind == "employee cost center moved":
            k = rnd.randrange(len(employees))
            old_e = employees[k]
            employees[k] = replace(old_e, cost_center=f"CC-{rnd.randrange(12):02d}")
            event = ("u", old_e, employees[k])
        elif kind == "contract cap moved":
            k = rnd.randrange(len(contracts))
            old_c = contracts[k]
            cap = (old_c.cap_amount or Decimal("300000.00")) + rnd.choice((-20000, 20000))
            contracts[k] = replace(old_c, cap_amount=cap, updated_at=clock)
            event = ("u", old_c, contracts[k])
        elif kind == "contract rate changed":
            rid = f"R{rnd.randrange(sc.contracts)}-{rnd.randrange(len(CATEGORIES))}"
            old_r = rates[rid]
            rates[rid] = replace(old_r, hourly_rate=(old_r.hourly_rate or Decimal(0)) + 5)
            event = ("u", old_r, rates[rid])
        elif kind == "amendment opened / approved":
            if pending and rnd.random() < 0.5:
                old_a = pending.pop(0)
                event = ("u", old_a, replace(old_a, status="approved", updated_at=clock))
            else:
                a = ContractAmendment(f"AM{emitted}", f"C{rnd.randrange(sc.contracts)}",
                                      "pending", clock.date(), clock)  # fmt: skip
                pending.append(a)
                event = ("c", None, a)
        elif kind == "account changed":
            k = rnd.randrange(len(accounts))
            old_a2 = accounts[k]
            accounts[k] = replace(old_a2, name=f"{old_a2.name}.", updated_at=clock)
            event = ("u", old_a2, accounts[k])
        if event is not None:
            yield event
            emitted += 1


def _reads(rows: Iterable[Row]) -> Iterator[Event]:
    """Rows as Debezium snapshot reads."""
    for row in rows:
        yield ("r", None, row)


def _approved_line(i: int, work: date, at: datetime, sc: Scale, rnd: random.Random) -> Timesheet:
    """Timesheet ``i``, approved at ``at``: a random employee, project and hours of the firm."""
    return Timesheet(i, f"E{rnd.randrange(sc.employees)}", f"P{rnd.randrange(sc.projects)}",
                     work, Decimal(rnd.choice(("2.00", "4.00", "8.00"))), True, "approved", at,
                     None, at)  # fmt: skip


def open_lines_stream(lines: int, *, seed: int = 11) -> Iterator[Event]:
    """Reference rows, then ``lines`` approved timesheet lines over 12 months (snapshot reads)."""
    sc = Scale.for_lines(lines)
    rnd = random.Random(seed)  # noqa: S311  # synthetic data, not security
    yield from _reads(reference_rows(sc))
    day0 = date(2025, 2, 3)
    for i in range(1, lines + 1):
        work = day0 + timedelta(days=rnd.randrange(330))
        at = datetime(work.year, work.month, work.day, 18, tzinfo=UTC) + timedelta(seconds=i)
        yield ("r", None, _approved_line(i, work, at, sc, rnd))


HISTORY_START = date(2025, 1, 1)  # the contracts' start: no line of the history is before it


def history_stream(
    lines: int, open_lines: int, *, open_months: int = 12, seed: int = 11
) -> Iterator[Event]:
    """A firm over time: ``lines`` approved lines month by month in work_date order, at
    ``open_lines / open_months`` lines a month, the months before the last ``open_months``
    closed as the stream passes them.

    The firm is sized for ``open_lines`` (:meth:`Scale.for_lines`, as
    :func:`open_lines_stream` sizes it), so its last ``open_months`` months look like the
    all-open world of ``open_lines`` lines; before them lie ``lines - open_lines`` lines of
    history. When the first line of month *t* arrives, every month up to *t* - ``open_months``
    is closed (an ``accounting_periods`` row created with status ``closed``), so about
    ``lines - open_lines`` lines end final. Contract-wide caps are sized for the whole history
    (800,000 a year of it): a cap that binds holds its contract's later lines, and a held
    line is carried forward by every close (SPEC 2b) — the open state would then grow with
    history by the synthetic contracts' choice, not by the engine's.
    """
    if lines < 1 or open_lines < 1 or open_months < 1:
        raise ValueError("lines, open_lines and open_months must be positive")
    sc = Scale.for_lines(open_lines)
    rnd = random.Random(seed)  # noqa: S311  # synthetic data, not security
    months = -(-lines * open_months // open_lines)  # ceil: months of history
    years = -(-months // 12)
    rows = [
        replace(r, cap_amount=Decimal(800_000 * years))
        if isinstance(r, Contract) and r.cap_amount is not None and r.cap_period == "contract"
        else r
        for r in reference_rows(sc)
    ]
    yield from _reads(rows)
    closed = 0  # months closed so far, from HISTORY_START on
    for i in range(lines):
        t, rest = divmod(i * open_months, open_lines)  # month index, place in the month
        start = _month_start(HISTORY_START, t)
        while closed <= t - open_months:
            period = period_of(_month_start(HISTORY_START, closed))
            yield _close(period, datetime(start.year, start.month, start.day, tzinfo=UTC))
            closed += 1
        span = _month_start(HISTORY_START, t + 1) - start
        at = datetime(start.year, start.month, start.day, tzinfo=UTC) + span * rest / open_lines
        yield ("r", None, _approved_line(i + 1, at.date(), at + timedelta(hours=18), sc, rnd))
