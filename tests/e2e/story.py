"""The scripted billing story: rows of its own in the real PSA and CRM, and what the ERP
must show after each step, computed by hand from SPEC section 2.

Every id starts with the test's prefix (timesheet ids with the test's numeric base), so the
story never touches the seed data or another test's rows. All lines work in 2025-03 and are
approved in 2025-04 (UTC); tax is GB's 20 % throughout, rates are round numbers, so every
amount below can be checked on paper.

Steps (each a function of :class:`Story`; ``expect`` is cumulative):

1. ``world``: accounts, contracts, rates, employees, projects, 30 timesheets and 5 milestones
   — one line per reason of SPEC 2 (rules 2-14, retainer, cap incl. ``partially_held``,
   ``billed``), a draft line (no state), milestones accepted / planned / cancelled / 0.
2. ``late_cap_line``: a line approved *before* the capped lines already billed takes its
   place in the cap order: the others are adjusted down (one to ``held``).
3. ``move_project``: a project moves to a contract with another rate: reversal + charge.
4. ``amendment_opened``: a pending amendment holds its contract's billed line (reversal).
5. ``amendment_approved``: the line is released and billed again (charge).
6. ``delete_line``: an approved, billed line is deleted: reversal, no line state.
7. ``release_and_cancel``: an on-hold project becomes active (release → billed); a planned
   milestone is cancelled (its invoice-schedule line disappears).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.e2e.harness import Erp, LineKey, Sources, ledger_violations

D = Decimal
WORK = date(2025, 3, 10)
GB, GBP = "GB", "GBP"


def at(day: int, hour: int = 9) -> datetime:
    """An approval instant in April 2025 (UTC)."""
    return datetime(2025, 4, day, hour, 0, tzinfo=UTC)


def billed(amount: str, tax: str, **more: Any) -> dict[str, Any]:
    return {
        "state": "billed",
        "reason": None,
        "billed_amount": D(amount),
        "tax_amount": D(tax),
        "held_amount": D("0.00"),
        **more,
    }


def state(st: str, reason: str, **more: Any) -> dict[str, Any]:
    return {"state": st, "reason": reason, **more}


class Story:
    def __init__(self, sources: Sources, prefix: str) -> None:
        self.s = sources
        self.p = prefix
        # timesheet ids: a private block far above the seed's (uuid4, not `random`: the
        # test session seeds `random`, two sessions would pick the same block)
        self.base = 10**12 + uuid.uuid4().int % 10**7 * 10_000
        self.expect: dict[LineKey, dict[str, Any] | None] = {}
        self.schedule: dict[str, dict[str, Any] | None] = {}
        self.steps: list[tuple[str, Callable[[], None]]] = [
            ("world", self.world),
            ("late_cap_line", self.late_cap_line),
            ("move_project", self.move_project),
            ("amendment_opened", self.amendment_opened),
            ("amendment_approved", self.amendment_approved),
            ("delete_line", self.delete_line),
            ("release_and_cancel", self.release_and_cancel),
        ]

    # --- naming ----------------------------------------------------------------------------

    def id(self, kind: str, name: str) -> str:
        return f"{self.p}-{kind}-{name}"

    def ts(self, n: int) -> int:
        return self.base + n

    def tkey(self, n: int) -> LineKey:
        return ("timesheet", str(self.ts(n)))

    def mkey(self, name: str) -> LineKey:
        return ("milestone", self.id("MS", name))

    @property
    def project_ids(self) -> list[str]:
        return sorted(k for k in self.s.written.get("projects", set()))

    def item_ids(self) -> list[str]:
        return [k[1] for k in self.expect]

    # --- rows ------------------------------------------------------------------------------

    def _timesheet(
        self,
        n: int,
        emp: str,
        proj: str,
        hours: str,
        approved_day: int,
        *,
        billable: bool = True,
        status: str = "approved",
        hour: int = 9,
    ) -> dict[str, Any]:
        return {
            "timesheet_id": self.ts(n),
            "employee_id": self.id("EMP", emp),
            "project_id": self.id("PRJ", proj),
            "work_date": WORK,
            "hours": D(hours),
            "billable": billable,
            "status": status,
            "approved_at": at(approved_day, hour) if status == "approved" else None,
            "notes": f"e2e {n}",
        }

    def world(self) -> None:
        acc = self.id
        accounts = [
            ("MAIN", GB, GBP, "CUST-" + self.p),
            ("NOERP", GB, GBP, None),
            ("USD", GB, "USD", "CUST3-" + self.p),
            ("NOTAX", "XX-NOWHERE", GBP, "CUST2-" + self.p),
        ]
        self.s.insert(
            "accounts",
            [
                {
                    "account_id": acc("ACC", a),
                    "name": f"e2e {a}",
                    "tax_jurisdiction": tj,
                    "currency": cur,
                    "erp_customer_id": cust,
                }
                for a, tj, cur, cust in accounts
            ],
        )
        # (contract, account, type, status, end, cap, cap_period, retainer hours)
        contracts: list[tuple[str, str, str, str, date | None, str | None, str, str | None]] = [
            ("TM", "MAIN", "time_and_materials", "active", None, None, "contract", None),
            ("TM2", "MAIN", "time_and_materials", "active", None, None, "contract", None),
            ("CAP", "MAIN", "time_and_materials", "active", None, "1000.00", "contract", None),
            ("RET", "MAIN", "retainer", "active", None, None, "contract", "10.00"),
            ("SUSP", "MAIN", "time_and_materials", "suspended", None, None, "contract", None),
            ("DRAFT", "MAIN", "time_and_materials", "draft", None, None, "contract", None),
            ("AMD", "MAIN", "time_and_materials", "active", None, None, "contract", None),
            (
                "TERM",
                "MAIN",
                "time_and_materials",
                "active",
                date(2025, 1, 31),
                None,
                "contract",
                None,
            ),
            ("MS", "MAIN", "milestone", "active", None, None, "contract", None),
            ("NOERP", "NOERP", "time_and_materials", "active", None, None, "contract", None),
            ("CUR", "USD", "time_and_materials", "active", None, None, "contract", None),
            ("NOTAX", "NOTAX", "time_and_materials", "active", None, None, "contract", None),
            ("NOACC", "NONE", "time_and_materials", "active", None, None, "contract", None),
        ]
        self.s.insert(
            "contracts",
            [
                {
                    "contract_id": acc("CON", c),
                    "account_id": acc("ACC", a),
                    "contract_number": f"{self.p}-{c}",
                    "contract_type": typ,
                    "status": st,
                    "currency": GBP,
                    "start_date": date(2025, 1, 1),
                    "end_date": end,
                    "cap_amount": D(cap) if cap else None,
                    "cap_period": cp,
                    "retainer_hours_monthly": D(ret) if ret else None,
                }
                for c, a, typ, st, end, cap, cp, ret in contracts
            ],
        )
        rates = [
            ("TM", "CONSULTANT", "100.00", date(2025, 1, 1)),
            ("TM", "DEVELOPER", "90.00", date(2025, 1, 1)),
            ("TM", "DEVELOPER", "95.00", date(2025, 3, 1)),  # overlaps: AMBIGUOUS_RATE
            ("TM2", "CONSULTANT", "120.00", date(2025, 1, 1)),
        ]
        rates += [
            (c, "CONSULTANT", "100.00", date(2025, 1, 1))
            for c in ("CAP", "RET", "AMD", "TERM", "NOERP", "CUR", "NOTAX")
        ]
        self.s.insert(
            "contract_rates",
            [
                {
                    "rate_id": acc("RATE", str(i)),
                    "contract_id": acc("CON", c),
                    "labor_category": cat,
                    "hourly_rate": D(r),
                    "effective_from": frm,
                    "effective_to": None,
                }
                for i, (c, cat, r, frm) in enumerate(rates)
            ],
        )
        employees = [
            ("CON", "CONSULTANT"),
            ("DEV", "DEVELOPER"),
            ("ANA", "ANALYST"),
            ("NOCAT", None),
            ("BADCAT", "JUGGLER"),
        ]
        self.s.insert(
            "employees",
            [
                {
                    "employee_id": acc("EMP", e),
                    "name": f"e2e {e}",
                    "email": f"{e}@e2e.example",
                    "labor_category": cat,
                    "cost_center": "CC-E2E",
                    "legal_entity": "BS-UK-LTD",
                    "active": True,
                }
                for e, cat in employees
            ],
        )
        # (project, contract, status)
        projects = [
            ("TM", "TM", "active"),
            ("CAP", "CAP", "active"),
            ("RET", "RET", "active"),
            ("HOLD", "TM", "on_hold"),
            ("CLOSED", "TM", "closed"),
            ("SUSP", "SUSP", "active"),
            ("DRAFT", "DRAFT", "active"),
            ("AMD", "AMD", "active"),
            ("TERM", "TERM", "active"),
            ("MS", "MS", "active"),
            ("NOERP", "NOERP", "active"),
            ("CUR", "CUR", "active"),
            ("NOTAX", "NOTAX", "active"),
            ("NOACC", "NOACC", "active"),
            ("NOCON", "NONE", "active"),
            ("MOVE", "TM", "active"),
        ]
        self.s.insert(
            "projects",
            [
                {
                    "project_id": acc("PRJ", p),
                    "code": f"{self.p}-{p}",
                    "name": f"e2e {p}",
                    "account_id": acc("ACC", "MAIN"),
                    "contract_id": acc("CON", c),
                    "status": st,
                    "legal_entity": "BS-UK-LTD",
                }
                for p, c, st in projects
            ],
        )
        t = self._timesheet
        self.s.insert(
            "timesheets",
            [
                t(1, "CON", "TM", "25.00", 1),  # INVALID_HOURS
                t(2, "CON", "TM", "3.00", 1, billable=False),  # NOT_BILLABLE
                t(3, "CON", "NONE", "1.00", 1),  # PROJECT_UNKNOWN
                t(4, "NONE", "TM", "1.00", 1),  # EMPLOYEE_UNKNOWN
                t(5, "CON", "HOLD", "2.00", 1),  # PROJECT_ON_HOLD (released in step 7)
                t(6, "CON", "CLOSED", "1.00", 1),  # PROJECT_CLOSED
                t(7, "CON", "NOCON", "1.00", 1),  # CONTRACT_UNKNOWN
                t(8, "CON", "NOACC", "1.00", 1),  # ACCOUNT_UNKNOWN
                t(9, "CON", "SUSP", "1.00", 1),  # CONTRACT_SUSPENDED
                t(10, "CON", "DRAFT", "1.00", 1),  # CONTRACT_INACTIVE
                t(11, "CON", "TERM", "1.00", 1),  # OUTSIDE_CONTRACT_TERM
                t(12, "CON", "MS", "1.00", 1),  # MILESTONE_CONTRACT
                t(13, "CON", "NOERP", "1.00", 1),  # CUSTOMER_NOT_IN_ERP
                t(14, "CON", "CUR", "1.00", 1),  # CURRENCY_MISMATCH
                t(15, "NOCAT", "TM", "1.00", 1),  # UNMAPPED_LABOR_CATEGORY (null)
                t(16, "BADCAT", "TM", "1.00", 1),  # UNMAPPED_LABOR_CATEGORY (unmapped)
                t(17, "CON", "NOTAX", "1.00", 1),  # UNMAPPED_TAX_JURISDICTION
                t(18, "ANA", "TM", "1.00", 1),  # NO_RATE
                t(19, "DEV", "TM", "1.00", 1),  # AMBIGUOUS_RATE
                t(20, "CON", "TM", "7.50", 1),  # billed 750.00
                t(21, "CON", "TM", "4.00", 1, status="draft"),  # rule 1: no state
                t(22, "CON", "RET", "8.00", 1),  # retainer 10 h: fully covered
                t(23, "CON", "RET", "5.00", 2),  # 2 h covered, 3 h billed
                t(30, "CON", "CAP", "6.00", 2),  # cap 1000: 600 billed
                t(31, "CON", "CAP", "6.00", 3),  # 400 billed, 200 held: partially_held
                t(32, "CON", "CAP", "3.00", 4),  # nothing left: held
                t(40, "CON", "MOVE", "4.00", 1),  # moves to TM2 in step 3
                t(41, "CON", "AMD", "3.00", 1),  # held by an amendment in step 4
                t(42, "CON", "TM", "2.00", 1),  # deleted in step 6
            ],
        )
        ms = [
            ("ACC", "MS", "5000.00", "accepted", datetime(2025, 3, 15, 10, tzinfo=UTC)),
            ("PLAN", "MS", "2000.00", "planned", None),
            ("CANC", "MS", "1000.00", "cancelled", None),
            ("ZERO", "MS", "0.00", "accepted", datetime(2025, 3, 16, 10, tzinfo=UTC)),
            ("TM", "TM", "800.00", "accepted", datetime(2025, 3, 17, 10, tzinfo=UTC)),
        ]
        self.s.insert(
            "milestones",
            [
                {
                    "milestone_id": acc("MS", m),
                    "project_id": acc("PRJ", p),
                    "name": f"e2e {m}",
                    "amount": D(a),
                    "due_date": date(2025, 3, 31),
                    "status": st,
                    "accepted_at": when,
                }
                for m, p, a, st, when in ms
            ],
        )
        e, tk = self.expect, self.tkey
        con = {"contract_id": self.id("CON", "TM"), "period": "2025-03"}
        e[tk(1)] = state("exception", "INVALID_HOURS", **con)
        e[tk(2)] = state("non_billable", "NOT_BILLABLE", **con)
        e[tk(3)] = state("held", "PROJECT_UNKNOWN", contract_id=None)
        e[tk(4)] = state("held", "EMPLOYEE_UNKNOWN")
        e[tk(5)] = state("held", "PROJECT_ON_HOLD", billed_amount=D("0.00"))
        e[tk(6)] = state("exception", "PROJECT_CLOSED")
        e[tk(7)] = state("held", "CONTRACT_UNKNOWN", contract_id=self.id("CON", "NONE"))
        e[tk(8)] = state("held", "ACCOUNT_UNKNOWN")
        e[tk(9)] = state("held", "CONTRACT_SUSPENDED")
        e[tk(10)] = state("exception", "CONTRACT_INACTIVE")
        e[tk(11)] = state("exception", "OUTSIDE_CONTRACT_TERM")
        e[tk(12)] = state("non_billable", "MILESTONE_CONTRACT")
        e[tk(13)] = state("held", "CUSTOMER_NOT_IN_ERP")
        e[tk(14)] = state("exception", "CURRENCY_MISMATCH", currency=GBP)
        e[tk(15)] = state("exception", "UNMAPPED_LABOR_CATEGORY")
        e[tk(16)] = state("exception", "UNMAPPED_LABOR_CATEGORY")
        e[tk(17)] = state("exception", "UNMAPPED_TAX_JURISDICTION")
        e[tk(18)] = state("exception", "NO_RATE")
        e[tk(19)] = state("exception", "AMBIGUOUS_RATE")
        e[tk(20)] = billed("750.00", "150.00", billable_amount=D("750.00"), **con)
        e[tk(21)] = None
        e[tk(22)] = state(
            "non_billable",
            "COVERED_BY_RETAINER",
            covered_hours=D("8.00"),
            billable_amount=D("0.00"),
            billed_amount=D("0.00"),
        )
        e[tk(23)] = billed("300.00", "60.00", covered_hours=D("2.00"), billable_amount=D("300.00"))
        e[tk(30)] = billed("600.00", "120.00", billable_amount=D("600.00"))
        e[tk(31)] = state(
            "partially_held",
            "BILLING_CAP_EXCEEDED",
            billable_amount=D("600.00"),
            billed_amount=D("400.00"),
            held_amount=D("200.00"),
            tax_amount=D("80.00"),
        )
        e[tk(32)] = state(
            "held",
            "BILLING_CAP_EXCEEDED",
            billable_amount=D("300.00"),
            billed_amount=D("0.00"),
            held_amount=D("300.00"),
        )
        e[tk(40)] = billed("400.00", "80.00", contract_id=self.id("CON", "TM"))
        e[tk(41)] = billed("300.00", "60.00")
        e[tk(42)] = billed("200.00", "40.00")
        e[self.mkey("ACC")] = billed(
            "5000.00", "1000.00", contract_id=self.id("CON", "MS"), period="2025-03", currency=GBP
        )
        e[self.mkey("PLAN")] = None
        e[self.mkey("CANC")] = None
        e[self.mkey("ZERO")] = state("exception", "INVALID_AMOUNT")
        e[self.mkey("TM")] = None  # a T&M contract's milestone is not billed
        ms_con = {"contract_id": self.id("CON", "MS"), "currency": GBP}
        self.schedule = {
            self.id("MS", "ACC"): {**ms_con, "amount": D("5000.00"), "status": "accepted"},
            self.id("MS", "PLAN"): {**ms_con, "amount": D("2000.00"), "status": "planned"},
            self.id("MS", "CANC"): None,
            self.id("MS", "ZERO"): {**ms_con, "status": "accepted"},
            self.id("MS", "TM"): {"contract_id": self.id("CON", "TM"), "status": "accepted"},
        }

    def late_cap_line(self) -> None:
        """Approved on 04-01, before every capped line: the cap is re-allocated."""
        self.s.insert("timesheets", [self._timesheet(33, "CON", "CAP", "5.00", 1)])
        e, tk = self.expect, self.tkey
        e[tk(33)] = billed("500.00", "100.00")
        e[tk(30)] = state(
            "partially_held",
            "BILLING_CAP_EXCEEDED",
            billed_amount=D("500.00"),
            held_amount=D("100.00"),
            tax_amount=D("100.00"),
        )
        e[tk(31)] = state(
            "held",
            "BILLING_CAP_EXCEEDED",
            billed_amount=D("0.00"),
            held_amount=D("600.00"),
            tax_amount=D("0.00"),
        )
        e[tk(32)] = state("held", "BILLING_CAP_EXCEEDED", held_amount=D("300.00"))

    def move_project(self) -> None:
        self.s.update("projects", self.id("PRJ", "MOVE"), contract_id=self.id("CON", "TM2"))
        self.expect[self.tkey(40)] = billed("480.00", "96.00", contract_id=self.id("CON", "TM2"))

    def amendment_opened(self) -> None:
        self.s.insert(
            "contract_amendments",
            [
                {
                    "amendment_id": self.id("AMD", "1"),
                    "contract_id": self.id("CON", "AMD"),
                    "status": "pending",
                    "effective_date": date(2025, 5, 1),
                }
            ],
        )
        self.expect[self.tkey(41)] = state("held", "AMENDMENT_PENDING", billed_amount=D("0.00"))

    def amendment_approved(self) -> None:
        self.s.update("contract_amendments", self.id("AMD", "1"), status="approved")
        self.expect[self.tkey(41)] = billed("300.00", "60.00")

    def delete_line(self) -> None:
        self.s.delete("timesheets", self.ts(42))
        self.expect[self.tkey(42)] = None

    def release_and_cancel(self) -> None:
        self.s.update("projects", self.id("PRJ", "HOLD"), status="active")
        self.s.update("milestones", self.id("MS", "PLAN"), status="cancelled")
        self.expect[self.tkey(5)] = billed("200.00", "40.00")
        self.schedule[self.id("MS", "PLAN")] = None

    # --- expected ledger ---------------------------------------------------------------------

    def targets(self) -> dict[LineKey, tuple[Decimal, Decimal]]:
        """(billed, tax) every item's ledger must net to: 0 for items without a line state."""
        out = {}
        for key, want in self.expect.items():
            if want is None or want.get("billed_amount") is None:
                out[key] = (D("0.00"), D("0.00"))
            else:
                out[key] = (want["billed_amount"], want.get("tax_amount", D("0.00")))
        return out


# --- a burst of approvals on one monthly-capped contract (kill tests) -------------------------

BURST_CAP = D("30000.00")
BURST_RATE = D("100.00")


class Burst:
    """``n`` approvals on a contract capped at 30 000 a month, approved in a shuffled order
    (most inserts sort before lines already billed: the cap moves on nearly every change),
    then edits: every 10th line gets an hour more, every 25th is deleted.
    Needs the story's ``world`` (its MAIN account and CONSULTANT employee)."""

    def __init__(self, story: Story, n: int = 300) -> None:
        self.story = story
        self.n = n
        self.hours = {i: D(1 + i % 3) for i in range(n)}
        self.approved = {i: at(5) + timedelta(minutes=(i * 37) % n) for i in range(n)}

    def _num(self, i: int) -> int:
        return 1_000 + i

    def setup(self) -> None:
        st = self.story
        st.s.insert(
            "contracts",
            [
                {
                    "contract_id": st.id("CON", "BURST"),
                    "account_id": st.id("ACC", "MAIN"),
                    "contract_number": f"{st.p}-BURST",
                    "contract_type": "time_and_materials",
                    "status": "active",
                    "currency": GBP,
                    "start_date": date(2025, 1, 1),
                    "cap_amount": BURST_CAP,
                    "cap_period": "month",
                }
            ],
        )
        st.s.insert(
            "contract_rates",
            [
                {
                    "rate_id": st.id("RATE", "BURST"),
                    "contract_id": st.id("CON", "BURST"),
                    "labor_category": "CONSULTANT",
                    "hourly_rate": BURST_RATE,
                    "effective_from": date(2025, 1, 1),
                }
            ],
        )
        st.s.insert(
            "projects",
            [
                {
                    "project_id": st.id("PRJ", "BURST"),
                    "code": f"{st.p}-BURST",
                    "name": "e2e burst",
                    "account_id": st.id("ACC", "MAIN"),
                    "contract_id": st.id("CON", "BURST"),
                    "status": "active",
                    "legal_entity": "BS-UK-LTD",
                }
            ],
        )

    def chunks(self, size: int = 50) -> list[Callable[[], None]]:
        """Insert callables, one transaction of ``size`` approvals each, then the edits."""

        def insert(lo: int, hi: int) -> Callable[[], None]:
            def run() -> None:
                rows = []
                for i in range(lo, hi):
                    row = self.story._timesheet(self._num(i), "CON", "BURST", "1.00", 5)
                    row.update(hours=self.hours[i], approved_at=self.approved[i])
                    rows.append(row)
                self.story.s.insert("timesheets", rows)

            return run

        def edit() -> None:
            for i in range(0, self.n, 10):
                self.hours[i] += 1
                self.story.s.update("timesheets", self.story.ts(self._num(i)), hours=self.hours[i])
            for i in range(3, self.n, 25):
                self.story.s.delete("timesheets", self.story.ts(self._num(i)))
                del self.hours[i]

        return [insert(lo, min(lo + size, self.n)) for lo in range(0, self.n, size)] + [edit]

    def keys(self) -> list[LineKey]:
        return [self.story.tkey(self._num(i)) for i in range(self.n)]

    def expected(self) -> dict[LineKey, dict[str, Any] | None]:
        """The cap allocation by hand: in (approved_at, id) order, each line billed
        min(amount, cap left); tax 20 %."""
        out: dict[LineKey, dict[str, Any] | None] = dict.fromkeys(self.keys())
        used = D("0.00")
        for i in sorted(self.hours, key=lambda i: (self.approved[i], self._num(i))):
            amount = self.hours[i] * BURST_RATE
            part = min(amount, max(BURST_CAP - used, D("0.00")))
            used += part
            tax = (part * D("0.20")).quantize(D("0.01"))
            if part == amount:
                want = billed(str(part), str(tax))
            else:
                st = "held" if part == 0 else "partially_held"
                want = state(
                    st,
                    "BILLING_CAP_EXCEEDED",
                    billed_amount=part,
                    tax_amount=tax,
                    held_amount=amount - part,
                )
            out[self.story.tkey(self._num(i))] = {**want, "billable_amount": amount}
        return out


def ledger_problems(erp: Erp, story: Story) -> list[str]:
    """Per item of the story: the ledger nets to the target; entries obey the invariants."""
    ledger = erp.ledger(story.item_ids())
    problems = []
    for key, (amount, tax) in story.targets().items():
        entries = ledger.get(key, [])
        have = (
            sum((e["amount"] for e in entries), D("0.00")),
            sum((e["tax_amount"] for e in entries), D("0.00")),
        )
        if have != (amount, tax):
            problems.append(f"{key}: ledger nets to {have}, target {(amount, tax)}")
        problems += ledger_violations(key, entries)
    return problems
