"""Deterministic, realistic demo data for the source tables: pure functions of (scale, seed).

Nothing here touches a database. Every table draws from its own ``random.Random`` stream
(seeded with a string, which Python hashes deterministically), and the time of each employee
from a stream of its own, so timesheets can be produced lazily, one employee at a time, and
the same (scale, seed) always yields the same rows.

The data is shaped to exercise every rule of SPEC section 2 at realistic rates: see the
README's "demo data" table for the proportions.

The firm's vocabulary here — labor categories and :data:`BASE_RATES`, the mapped
:data:`JURISDICTIONS` with their currencies and legal entities — is also that of the
benchmarks' synthetic firm (``ops/bench/world.py``), the other source of synthetic firms. Its
rows are its own: the bench needs a firm in which every approved line bills, of exact sizes
and rows named by index, streaming changes on a compressed clock, where this one is a
realistic, partly faulty firm in a fixed window, loaded into the source databases.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, TypeVar

# --- the demo's calendar: six closed months, fixed so that a seed means the same data forever
WINDOW_START = date(2025, 7, 1)
WINDOW_END = date(2025, 12, 31)

LABOR_CATEGORIES = (
    "ANALYST",
    "DEVELOPER",
    "CONSULTANT",
    "SENIOR_CONSULTANT",
    "ARCHITECT",
    "MANAGER",
    "PARTNER",
)
UNMAPPED_LABOR_CATEGORIES = ("INTERN", "SUBCONTRACTOR")
BASE_RATES = {
    "ANALYST": 95,
    "DEVELOPER": 125,
    "CONSULTANT": 145,
    "SENIOR_CONSULTANT": 180,
    "ARCHITECT": 215,
    "MANAGER": 235,
    "PARTNER": 360,
}
CATEGORY_WEIGHTS = (14, 22, 22, 16, 8, 10, 4)


@dataclass(frozen=True)
class Jurisdiction:
    code: str
    currency: str
    legal_entity: str
    suffix: str
    mapped: bool = True


JURISDICTIONS = (
    Jurisdiction("US-NY", "USD", "BS-US-INC", "Inc."),
    Jurisdiction("US-CA", "USD", "BS-US-INC", "LLC"),
    Jurisdiction("GB", "GBP", "BS-UK-LTD", "Ltd"),
    Jurisdiction("DE", "EUR", "BS-DE-GMBH", "GmbH"),
    Jurisdiction("FR", "EUR", "BS-FR-SAS", "SAS"),
    Jurisdiction("NL", "EUR", "BS-NL-BV", "B.V."),
    Jurisdiction("CA-ON", "CAD", "BS-CA-INC", "Inc."),
    Jurisdiction("AU", "AUD", "BS-AU-PTY", "Pty Ltd"),
)
# deliberately absent from dataflows/reference/tax_rates.csv: UNMAPPED_TAX_JURISDICTION
UNMAPPED_JURISDICTIONS = (
    Jurisdiction("US-TX", "USD", "BS-US-INC", "Corp.", mapped=False),
    Jurisdiction("IE", "EUR", "BS-UK-LTD", "Ltd", mapped=False),
)
CURRENCIES = ("USD", "EUR", "GBP", "CAD", "AUD")

_FIRST = (
    "Alice", "Bram", "Chloé", "Dmitri", "Elif", "Farah", "Gustav", "Hana", "Ignacio", "Jana",
    "Kwame", "Léa", "Mateo", "Niamh", "Oskar", "Priya", "Quentin", "Rosa", "Søren", "Tomás",
    "Uma", "Viktor", "Wen", "Xavier", "Yuki", "Zoë", "José", "Ngọc", "Siobhán", "Łukasz",
)  # fmt: skip
_LAST = (
    "Anders", "Baker", "Costa", "Dubois", "Eriksen", "Fischer", "García", "Hughes", "Ivanova",
    "Jansen", "Kowalski", "Lefèvre", "Müller", "Nakamura", "O'Connor", "Patel", "Quinn",
    "Rossi", "Schmidt", "Takahashi", "Urban", "van Dijk", "Walsh", "Nguyễn", "Zhang",
)  # fmt: skip
_COMPANY = (
    "Northwind", "Contoso", "Fabrikam", "Tailspin", "Litware", "Adatum", "Proseware",
    "Wingtip", "Woodgrove", "Lucerne", "Coho", "Humongous", "Alpine", "Blue Yonder",
    "Margie's", "Trey", "Wide World", "Fourth Coffee", "Graphic Design", "Relecloud",
)  # fmt: skip
_SECTOR = ("Logistics", "Insurance", "Energy", "Retail", "Health", "Media", "Bank", "Foods")
_WORKSTREAM = (
    "ERP rollout", "Data platform", "Cloud migration", "Security review", "CRM upgrade",
    "Mobile app", "Finance transformation", "Analytics", "Integration hub", "Support",
)  # fmt: skip
_NOTES = (
    "Workshop with client",
    "Code review",
    "Réunion de pilotage",
    "Überprüfung der Schnittstellen",
    "O'Brien's data-load; re-run",
    "Design session ☕",
    'Fixed "edge case" in batch 50% faster',
    "Travel day",
    "Status report",
    "Test cycle 2 -- regression",
)

_CENT = Decimal("0.01")
T = TypeVar("T")


def _money(value: Decimal | float | int) -> Decimal:
    return Decimal(str(value)).quantize(_CENT, rounding=ROUND_HALF_UP)


def _pick(rng: random.Random, options: Sequence[T], weights: Sequence[float]) -> T:
    return rng.choices(options, weights=weights, k=1)[0]


def _rng(seed: int, stream: str) -> random.Random:
    """The random stream ``stream`` of a seed (demo data, not security)."""
    return random.Random(f"{seed}:{stream}")  # noqa: S311  # reproducible demo data, no secrets


def _every(i: int, k: int, offset: int) -> bool:
    """Row ``i`` is one of the regular 1-in-``k`` rows that carry a rare trait."""
    return i % k == offset


def _months() -> list[date]:
    out, d = [], WINDOW_START
    while d <= WINDOW_END:
        out.append(d)
        d = date(d.year + d.month // 12, d.month % 12 + 1, 1)
    return out


def _at(day: date, rng: random.Random) -> datetime:
    """A working-hours instant (UTC) on ``day``."""
    clock = time(rng.randrange(8, 19), rng.randrange(60), rng.randrange(60), rng.randrange(10**6))
    return datetime.combine(day, clock, tzinfo=UTC)


_WINDOW_CLOSE = datetime.combine(WINDOW_END, time(23, 59, 59), tzinfo=UTC)


@dataclass(frozen=True)
class Counts:
    """How many rows of each parent table a scale produces."""

    employees: int
    accounts: int

    @classmethod
    def for_scale(cls, scale: float) -> Counts:
        if scale <= 0:
            raise ValueError("scale must be > 0")
        return cls(employees=max(5, round(40 * scale)), accounts=max(4, round(20 * scale)))


# --- tables as column names + row tuples (tuples: cheap to build and to bulk-load) -----------

COLUMNS: dict[str, tuple[str, ...]] = {
    "accounts": (
        "account_id", "name", "tax_jurisdiction", "currency", "erp_customer_id", "updated_at",
    ),
    "contracts": (
        "contract_id", "account_id", "contract_number", "contract_type", "status", "currency",
        "start_date", "end_date", "cap_amount", "cap_period", "retainer_hours_monthly",
        "updated_at",
    ),
    "contract_rates": (
        "rate_id", "contract_id", "labor_category", "hourly_rate", "effective_from",
        "effective_to",
    ),
    "contract_amendments": (
        "amendment_id", "contract_id", "status", "effective_date", "updated_at",
    ),
    "employees": (
        "employee_id", "name", "email", "labor_category", "cost_center", "legal_entity",
        "active", "updated_at",
    ),
    "projects": (
        "project_id", "code", "name", "account_id", "contract_id", "status", "legal_entity",
        "updated_at",
    ),
    "milestones": (
        "milestone_id", "project_id", "name", "amount", "due_date", "status", "accepted_at",
        "updated_at",
    ),
    "timesheets": (
        "timesheet_id", "employee_id", "project_id", "work_date", "hours", "billable",
        "status", "approved_at", "notes", "updated_at",
    ),
}  # fmt: skip

Row = tuple[Any, ...]


@dataclass
class Dataset:
    """Every parent row of one (scale, seed); timesheets come lazily from :meth:`timesheets`."""

    scale: float
    seed: int
    tables: dict[str, list[Row]] = field(default_factory=dict)
    # employee_id -> the projects the employee books time on
    assignments: dict[str, list[str]] = field(default_factory=dict)
    expected_timesheets: int = 0

    def timesheets(self) -> Iterator[Row]:
        """Timesheet lines, employee by employee, ids 1, 2, … in generation order."""
        next_id = 1
        for employee_id, project_ids in self.assignments.items():
            rng = _rng(self.seed, f"timesheets:{employee_id}")
            for row in _employee_time(rng, employee_id, project_ids, next_id):
                next_id += 1
                yield row


def build(scale: float, seed: int = 42) -> Dataset:
    """The parent rows (CRM and PSA) of a demo data set."""
    counts = Counts.for_scale(scale)
    ds = Dataset(scale=scale, seed=seed)
    accounts = _accounts(_rng(seed, "accounts"), counts.accounts)
    contracts = _contracts(_rng(seed, "contracts"), accounts)
    ds.tables["accounts"] = accounts
    ds.tables["contracts"] = contracts
    ds.tables["contract_rates"] = _rates(_rng(seed, "rates"), contracts)
    ds.tables["contract_amendments"] = _amendments(_rng(seed, "amendments"), contracts)
    projects = _projects(_rng(seed, "projects"), accounts, contracts)
    ds.tables["projects"] = projects
    ds.tables["milestones"] = _milestones(_rng(seed, "milestones"), projects, contracts)
    employees = _employees(_rng(seed, "employees"), counts.employees)
    ds.tables["employees"] = employees
    ds.assignments = _assign(_rng(seed, "assignments"), employees, projects)
    ds.expected_timesheets = round(len(employees) * _LINES_PER_EMPLOYEE)
    return ds


# --- CRM -----------------------------------------------------------------------------------


def _accounts(rng: random.Random, n: int) -> list[Row]:
    rows: list[Row] = []
    for i in range(1, n + 1):
        unmapped = _every(i, 20, 3)  # UNMAPPED_TAX_JURISDICTION
        j = rng.choice(UNMAPPED_JURISDICTIONS if unmapped else JURISDICTIONS)
        name = f"{rng.choice(_COMPANY)} {rng.choice(_SECTOR)} {j.suffix}"
        erp_customer_id = None if _every(i, 12, 5) else f"CUST-{100000 + i}"
        updated = _at(WINDOW_START - timedelta(days=rng.randrange(30, 900)), rng)
        rows.append((f"ACC-{i:05d}", name, j.code, j.currency, erp_customer_id, updated))
    return rows


_COVER = [
    (t, s)
    for s in ("active", "suspended", "draft", "terminated")
    for t in ("time_and_materials", "retainer", "milestone")
]


def _contracts(rng: random.Random, accounts: list[Row]) -> list[Row]:
    rows: list[Row] = []
    i = 0
    for account_id, _name, _tax, currency, _erp, _upd in accounts:
        for _ in range(_pick(rng, (1, 2, 3), (50, 35, 15))):
            i += 1
            ctype = _pick(rng, ("time_and_materials", "retainer", "milestone"), (65, 15, 20))
            status = _pick(rng, ("active", "terminated", "suspended", "draft"), (80, 8, 6, 6))
            if i <= len(_COVER):  # every contract type in every status, at any scale
                ctype, status = _COVER[i - 1]
            cur = currency
            if _every(i, 30, 7):  # CURRENCY_MISMATCH
                cur = CURRENCIES[(CURRENCIES.index(currency) + 1) % len(CURRENCIES)]
            if rng.random() < 0.85:
                start = WINDOW_START - timedelta(days=rng.randrange(30, 700))
            else:  # the term starts inside the window: earlier time is OUTSIDE_CONTRACT_TERM
                start = WINDOW_START + timedelta(days=rng.randrange(10, 120))
            end: date | None = None
            if status == "terminated":
                end = max(start, WINDOW_START + timedelta(days=rng.randrange(30, 150)))
            elif rng.random() < 0.15:
                end = max(start, WINDOW_END - timedelta(days=rng.randrange(0, 60)))
            cap: Decimal | None = None
            period = "contract"
            if rng.random() < 0.3:
                if rng.random() < 0.4:
                    period = "month"
                    cap = _money(rng.randrange(30, 120) * 500)
                else:
                    cap = _money(rng.randrange(60, 600) * 1000)
            retainer: Decimal | None = None
            if ctype == "retainer" and rng.random() < 0.9:
                retainer = _money(rng.choice((20, 40, 60, 80, 120, 37.5)))
            updated = _at(start, rng)
            number = f"CN-{start.year}-{i:05d}"
            rows.append(
                (
                    f"CON-{i:05d}", account_id, number, ctype, status, cur, start, end,
                    cap, period, retainer, updated,
                )
            )  # fmt: skip
    return rows


def _rates(rng: random.Random, contracts: list[Row]) -> list[Row]:
    rows: list[Row] = []
    i = 0
    for n, (contract_id, _acc, _num, ctype, _st, _cur, start, *_) in enumerate(contracts, 1):
        if ctype == "milestone":
            continue
        multiplier = Decimal(rng.randrange(85, 126)) / 100
        categories = list(LABOR_CATEGORIES)
        if _every(n, 20, 9):  # a category without any rate: NO_RATE
            categories.remove(rng.choice(categories))
        change = WINDOW_START + timedelta(days=rng.randrange(20, 160))
        change = max(change, start + timedelta(days=14))  # the first rate lasts two weeks
        gap = _every(n, 16, 2)  # a week with no rate: NO_RATE
        overlap = _every(n, 20, 4)  # ten days with two rates: AMBIGUOUS_RATE
        repriced = gap or overlap or rng.random() < 0.5
        for cat in categories:
            first = (Decimal(BASE_RATES[cat]) * multiplier / 5).quantize(Decimal(1)) * 5
            i += 1
            if not repriced:
                rows.append((f"RATE-{i:06d}", contract_id, cat, _money(first), start, None))
                continue
            first_to = change - timedelta(days=1)
            if overlap:
                first_to = change + timedelta(days=10)
            second_from = change + timedelta(days=7) if gap else change
            second = (first * (1 + Decimal(rng.randrange(3, 9)) / 100) * 2).quantize(Decimal(1)) / 2
            rows.append((f"RATE-{i:06d}", contract_id, cat, _money(first), start, first_to))
            i += 1
            rows.append((f"RATE-{i:06d}", contract_id, cat, _money(second), second_from, None))
    return rows


def _amendments(rng: random.Random, contracts: list[Row]) -> list[Row]:
    rows: list[Row] = []
    i = 0
    for contract_id, *_ in contracts:
        if rng.random() >= 0.3:
            continue
        for _ in range(rng.choice((1, 1, 2))):
            i += 1
            status = _pick(rng, ("approved", "rejected", "pending"), (72, 15, 13))
            if i <= 2:  # at any scale: one pending (AMENDMENT_PENDING), one rejected
                status = ("pending", "rejected")[i - 1]
            effective = WINDOW_START + timedelta(days=rng.randrange(0, 180))
            rows.append((f"AMD-{i:05d}", contract_id, status, effective, _at(effective, rng)))
    return rows


# --- PSA -----------------------------------------------------------------------------------

_ENTITY = {j.code: j.legal_entity for j in JURISDICTIONS + UNMAPPED_JURISDICTIONS}


def _projects(rng: random.Random, accounts: list[Row], contracts: list[Row]) -> list[Row]:
    by_account = {a[0]: a for a in accounts}
    rows: list[Row] = []
    i = 0
    for contract_id, account_id, _num, ctype, _st, _cur, start, *_ in contracts:
        account = by_account[account_id]
        n = 1 if ctype == "retainer" else _pick(rng, (1, 2, 3), (50, 35, 15))
        for _ in range(n):
            i += 1
            status = _pick(rng, ("active", "on_hold", "closed"), (88, 7, 5))
            if i in (2, 3):  # at any scale: PROJECT_ON_HOLD and PROJECT_CLOSED
                status = ("on_hold", "closed")[i - 2]
            name = f"{account[1].split(' ')[0]} — {rng.choice(_WORKSTREAM)}"
            rows.append(
                (
                    f"PRJ-{i:05d}", f"P{i:05d}", name, account_id, contract_id, status,
                    _ENTITY[account[2]], _at(max(start, WINDOW_START - timedelta(days=90)), rng),
                )
            )  # fmt: skip
    return rows


def _milestones(rng: random.Random, projects: list[Row], contracts: list[Row]) -> list[Row]:
    ctype = {c[0]: c[3] for c in contracts}
    rows: list[Row] = []
    i = 0
    late = WINDOW_END - timedelta(days=30)
    for project_id, _code, pname, _acc, contract_id, *_ in projects:
        if ctype[contract_id] == "milestone":
            n = rng.randrange(3, 7)
        elif rng.random() < 0.1:  # a milestone on a T&M/retainer contract: never billed
            n = 1
        else:
            continue
        for k in range(1, n + 1):
            i += 1
            due = WINDOW_START + timedelta(days=rng.randrange(0, 184))
            if _every(i, 100, 13):
                amount = _money(0)  # INVALID_AMOUNT
            else:
                amount = _money(rng.randrange(10, 240) * 250 + rng.choice((0, 0, 0, 0.5, 99.99)))
            if due <= late:
                status = _pick(
                    rng, ("accepted", "completed", "cancelled", "planned"), (70, 15, 10, 5)
                )
            else:
                status = _pick(
                    rng, ("planned", "completed", "accepted", "cancelled"), (60, 25, 10, 5)
                )
            accepted = None
            if status == "accepted":
                accepted = min(_at(due + timedelta(days=rng.randrange(-3, 10)), rng), _WINDOW_CLOSE)
            updated = accepted or _at(due - timedelta(days=rng.randrange(5, 60)), rng)
            name = f"{pname.split(' — ')[-1]}: phase {k}"
            rows.append((f"MS-{i:06d}", project_id, name, amount, due, status, accepted, updated))
    return rows


def _employees(rng: random.Random, n: int) -> list[Row]:
    rows: list[Row] = []
    for i in range(1, n + 1):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        category: str | None = _pick(rng, LABOR_CATEGORIES, CATEGORY_WEIGHTS)
        if _every(i, 50, 7):
            category = None  # UNMAPPED_LABOR_CATEGORY
        elif _every(i, 60, 11):
            category = rng.choice(UNMAPPED_LABOR_CATEGORIES)
        local = "".join(
            ch for ch in f"{first}.{last}".lower() if (ch.isascii() and ch.isalpha()) or ch == "."
        )
        j = rng.choice(JURISDICTIONS)
        rows.append(
            (
                f"EMP-{i:05d}", f"{first} {last}", f"{local}.{i}@billsync-demo.example", category,
                f"CC-{rng.randrange(100, 120)}", j.legal_entity, rng.random() >= 0.05,
                _at(WINDOW_START - timedelta(days=rng.randrange(1, 400)), rng),
            )
        )  # fmt: skip
    return rows


def _assign(rng: random.Random, employees: list[Row], projects: list[Row]) -> dict[str, list[str]]:
    ids = [p[0] for p in projects]
    return {e[0]: rng.sample(ids, k=min(len(ids), rng.choice((1, 2, 2, 3)))) for e in employees}


# --- time ----------------------------------------------------------------------------------

_LINES_PER_EMPLOYEE = 243.0  # measured mean of _employee_time over the window (README)
_MONTHS = _months()
_STATUS_BY_AGE = (  # months before the window's last: (draft, submitted, approved, rejected)
    (25, 35, 35, 5),
    (2, 10, 85, 3),
    (0, 2, 95, 3),
)
_STATUSES = ("draft", "submitted", "approved", "rejected")


def _workdays() -> list[date]:
    days, d = [], WINDOW_START
    while d <= WINDOW_END:
        if d.weekday() < 5:
            days.append(d)
        d += timedelta(days=1)
    return days


_WORKDAYS = _workdays()


def _hours(rng: random.Random, total_quarters: int, n: int) -> list[Decimal]:
    cuts = sorted(rng.sample(range(1, total_quarters), n - 1)) if n > 1 else []
    bounds = [0, *cuts, total_quarters]
    return [Decimal(b - a) / 4 for a, b in itertools.pairwise(bounds)]


def _employee_time(
    rng: random.Random, employee_id: str, project_ids: list[str], first_id: int
) -> Iterator[Row]:
    next_id = first_id
    last_month = _MONTHS[-1]
    for day in _WORKDAYS:
        if rng.random() >= 0.95:
            continue
        n = min(_pick(rng, (1, 2, 3), (25, 55, 20)), 3)
        quarters = rng.choice((30, 32, 32, 32, 34, 36))
        age = (last_month.year - day.year) * 12 + last_month.month - day.month
        weights = _STATUS_BY_AGE[min(age, 2)]
        for hours in _hours(rng, quarters, n):
            if rng.random() < 0.0005:  # INVALID_HOURS
                hours = rng.choice((Decimal("0.00"), Decimal("25.00"), Decimal("-1.00")))
            status = _pick(rng, _STATUSES, weights)
            approved_at = None
            submitted = _at(day + timedelta(days=4 - day.weekday()), rng)
            if status == "approved":
                approved_at = min(submitted + timedelta(days=rng.randrange(1, 7)), _WINDOW_CLOSE)
            notes = rng.choice(_NOTES) if rng.random() < 0.4 else None
            updated = approved_at or min(submitted, _WINDOW_CLOSE)
            yield (
                next_id, employee_id, rng.choice(project_ids), day, _money(hours),
                rng.random() >= 0.12, status, approved_at, notes, updated,
            )  # fmt: skip
            next_id += 1
