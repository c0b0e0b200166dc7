"""The demo's live story: what finance sees after each real change in PSA and CRM.

Every step writes to the real source databases (Debezium picks the change up), waits until
the ERP shows the expected line states, then prints line states, ledger entries and holds.
Ids carry a run tag, so the demo can run again on the same stack.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, insert, select, update

from billsync.errors import BillsyncError
from connectors import sources as src
from ops.console import console, emit_table
from sinks.erp import periods
from sinks.erp import tables as erp
from sinks.erp.recon import figures

D = Decimal
Expect = dict[str, tuple[str, str | None]]  # timesheet_id -> (state, reason)


@dataclass
class Demo:
    psa: Engine
    crm: Engine
    erp: Engine
    tag: str
    timeout_s: float = 180.0
    cli: Callable[..., object] | None = None  # `billsync` subcommands (the reopen of a rerun)

    @property
    def ids(self) -> dict[str, str]:
        t = self.tag
        return {
            "account": f"DEMO-{t}-ACC",
            "contract": f"DEMO-{t}-CON",
            "project": f"DEMO-{t}-PRJ",
            "employee": f"DEMO-{t}-EMP",
            "rate": f"DEMO-{t}-RATE",
            "amendment": f"DEMO-{t}-AMD",
        }

    def ts_id(self, n: int) -> int:
        return 9_000_000_000 + int(self.tag) * 100 + n

    # --- printing ------------------------------------------------------------------------
    def show(
        self,
        title: str,
        expect: Expect,
        billed: dict[str, Decimal] | None = None,
        final: dict[str, bool] | None = None,
    ) -> None:
        self.wait(expect, billed or {}, final)
        console.rule(f"[bold]{title}")
        ids = [str(self.ts_id(n)) for n in range(1, 10)]
        s = erp.billing_line_state
        with self.erp.connect() as c:
            lines = (
                c.execute(select(s).where(s.c.source_id.in_(ids)).order_by(s.c.source_id))
                .mappings()
                .all()
            )
            tx = erp.erp_billing_transactions
            entries = (
                c.execute(
                    select(tx).where(tx.c.source_id.in_(ids)).order_by(tx.c.source_id, tx.c.seq)
                )
                .mappings()
                .all()
            )
            fig = figures(c, self.ids["project"], lines[0]["period"]) if lines else None
        label = {str(self.ts_id(n)): f"line {n}" for n in range(1, 10)}
        emit_table(
            [{**r, "line": label[r["source_id"]]} for r in lines],
            (
                "line",
                "state",
                "reason",
                "billable_amount",
                "billed_amount",
                "held_amount",
                "tax_amount",
                "final",
                "final_period",
            ),
            title="billing_line_state",
        )
        emit_table(
            [{**r, "line": label[r["source_id"]]} for r in entries],
            (
                "line",
                "seq",
                "entry_type",
                "amount",
                "tax_amount",
                "period",
                "posting_period",
                "source_position",
            ),
            title="ERP ledger",
        )
        if fig is not None:
            emit_table(
                [asdict(fig)],
                (
                    "period",
                    "approved_hours",
                    "billed_amount",
                    "tax_amount",
                    "held_amount",
                    "held_count",
                    "exception_count",
                    "ledger_entries",
                ),
                title=f"reconciliation {self.ids['project']}",
            )

    def wait(
        self, expect: Expect, billed: dict[str, Decimal], final: dict[str, bool] | None = None
    ) -> None:
        deadline = time.monotonic() + self.timeout_s
        s = erp.billing_line_state
        have: dict[str, tuple[str, str | None]] = {}
        while time.monotonic() < deadline:
            with self.erp.connect() as c:
                rows = c.execute(
                    select(
                        s.c.source_id, s.c.state, s.c.reason, s.c.billed_amount, s.c.final
                    ).where(s.c.source_type == "timesheet", s.c.source_id.in_(list(expect)))
                ).all()
            have = {r[0]: (r[1], r[2]) for r in rows}
            amounts = {r[0]: r[3] for r in rows}
            finals = {r[0]: bool(r[4]) for r in rows}
            if (
                have == expect
                and all(amounts.get(k) == v for k, v in billed.items())
                and all(finals.get(k) == v for k, v in (final or {}).items())
            ):
                return
            time.sleep(0.5)
        raise BillsyncError(
            f"the ERP did not reach the expected states in {self.timeout_s}s: "
            f"expected {expect}, have {have}"
        )

    # --- the story ---------------------------------------------------------------------------
    def run(self) -> None:
        i = self.ids
        now = datetime.now(UTC).replace(microsecond=0)
        month = now.date().replace(day=1)
        with self.crm.begin() as c:
            c.execute(
                insert(src.accounts),
                [
                    dict(
                        account_id=i["account"],
                        name="Demo Client GmbH",
                        tax_jurisdiction="DE",
                        currency="EUR",
                        erp_customer_id=f"CUST-{self.tag}",
                    )
                ],
            )
            c.execute(
                insert(src.contracts),
                [
                    dict(
                        contract_id=i["contract"],
                        account_id=i["account"],
                        contract_number=f"K-{self.tag}",
                        contract_type="time_and_materials",
                        status="active",
                        currency="EUR",
                        start_date=month - timedelta(days=365),
                        end_date=None,
                        cap_amount=D("3000.00"),
                        cap_period="contract",
                        retainer_hours_monthly=None,
                    )
                ],
            )
            c.execute(
                insert(src.contract_rates),
                [
                    dict(
                        rate_id=i["rate"],
                        contract_id=i["contract"],
                        labor_category="SENIOR_CONSULTANT",
                        hourly_rate=D("150.00"),
                        effective_from=month - timedelta(days=365),
                        effective_to=None,
                    )
                ],
            )
        with self.psa.begin() as c:
            c.execute(
                insert(src.employees),
                [
                    dict(
                        employee_id=i["employee"],
                        name="Dana Demo",
                        email="dana@example.com",
                        labor_category="SENIOR_CONSULTANT",
                        cost_center="CC-DEMO",
                        legal_entity="DE01",
                        active=True,
                    )
                ],
            )
            c.execute(
                insert(src.projects),
                [
                    dict(
                        project_id=i["project"],
                        code=f"P-{self.tag}",
                        name="Demo rollout",
                        account_id=i["account"],
                        contract_id=i["contract"],
                        status="active",
                        legal_entity="DE01",
                    )
                ],
            )
            c.execute(
                insert(src.timesheets),
                [
                    self._ts(1, "8.00", month, now - timedelta(hours=3)),
                    self._ts(2, "8.00", month + timedelta(days=1), now - timedelta(hours=2)),
                    self._ts(3, "4.00", month + timedelta(days=2), now - timedelta(hours=1)),
                ],
            )
        a, b, c3 = (str(self.ts_id(n)) for n in (1, 2, 3))
        billed: Expect = {a: ("billed", None), b: ("billed", None), c3: ("billed", None)}
        self.show("1. Time approved: 20 h at 150.00, cap 3,000.00 — billed", billed)

        self._psa(
            update(src.projects)
            .where(src.projects.c.project_id == i["project"])
            .values(status="on_hold")
        )
        held: Expect = {k: ("held", "PROJECT_ON_HOLD") for k in billed}
        self.show("2a. Project put on hold — every line held, charges reversed", held)
        self._psa(
            update(src.projects)
            .where(src.projects.c.project_id == i["project"])
            .values(status="active")
        )
        self.show("2b. Project released — billed again", billed)

        self._crm(
            insert(src.contract_amendments).values(
                amendment_id=i["amendment"],
                contract_id=i["contract"],
                status="pending",
                effective_date=month,
            )
        )
        self.show(
            "3a. Amendment opened — lines held until it is decided",
            {k: ("held", "AMENDMENT_PENDING") for k in billed},
        )
        self._crm(
            update(src.contract_amendments)
            .where(src.contract_amendments.c.amendment_id == i["amendment"])
            .values(status="approved")
        )
        self.show("3b. Amendment approved — released", billed)

        self._psa(
            insert(src.timesheets).values(**self._ts(4, "8.00", month + timedelta(days=3), now))
        )
        d = str(self.ts_id(4))
        self.show(
            "4a. Cap reached — the new line is held",
            {**billed, d: ("held", "BILLING_CAP_EXCEEDED")},
        )
        self._crm(
            update(src.contracts)
            .where(src.contracts.c.contract_id == i["contract"])
            .values(cap_amount=D("5000.00"))
        )
        self.show("4b. Cap raised to 5,000.00 — billed", {**billed, d: ("billed", None)})

        self._psa(
            update(src.timesheets)
            .where(src.timesheets.c.timesheet_id == self.ts_id(1))
            .values(hours=D("6.00"))
        )
        self.show(
            "5. An approved line edited after billing (8 h → 6 h) — an adjustment",
            {**billed, d: ("billed", None)},
            {a: D("900.00")},
        )
        self.close_month({**billed, d: ("billed", None)}, month)

    # --- closed periods (SPEC 2b) -----------------------------------------------------
    def close_month(self, billed: Expect, month: date) -> None:
        """6. Finance closes the month: invoiced lines are final; a hold no longer reverses
        them; a correction of a closed month's line is posted into the next open month."""
        period = f"{month.year:04d}-{month.month:02d}"
        with self.erp.begin() as c:
            calendar = {p.period: p for p in periods.list_periods(c)}
        if period in calendar and calendar[period].status == periods.CLOSED and self.cli:
            # a rerun: reopen this month (the latest closed one) so this run's lines close too
            self.cli("periods", "reopen", period, "--reason", f"demo run {self.tag}: close again")
            with self.erp.begin() as c:
                calendar = {p.period: p for p in periods.list_periods(c)}
        closing = sorted(
            p.period
            for p in calendar.values()
            if p.period <= period and p.status != periods.CLOSED and p.has_items
        )
        rows = []
        for each in closing:  # in order: a period closes only after every earlier one
            with self.erp.begin() as c:
                plan = periods.close(c, each, "demo", force=True, now=datetime.now(UTC))
            rows.append(
                {"period": each, "final": plan.finalising, "carried_forward": len(plan.carry)}
            )
        emit_table(rows, ("period", "final", "carried_forward"), title="periods closed by finance")
        final = dict.fromkeys(billed, True)
        self.show(f"6a. {period} closed — its invoiced lines are final", billed, final=final)
        i = self.ids
        self._psa(
            update(src.projects)
            .where(src.projects.c.project_id == i["project"])
            .values(status="on_hold")
        )
        time.sleep(3)  # give the hold time to reach the flow: nothing of the closed month moves
        self.show("6b. Project put on hold — the closed month's lines stay billed", billed,
                  final=final)  # fmt: skip
        self._psa(
            update(src.projects)
            .where(src.projects.c.project_id == i["project"])
            .values(status="active")
        )
        a = str(self.ts_id(1))
        self._psa(
            update(src.timesheets)
            .where(src.timesheets.c.timesheet_id == self.ts_id(1))
            .values(hours=D("7.00"))
        )
        self.show(
            "6c. A line of the closed month corrected (6 h → 7 h) — posted into the next month, "
            "CHANGED_AFTER_CLOSE in the exception queue",
            billed,
            {a: D("1050.00")},
            {a: False},
        )

    def _ts(self, n: int, hours: str, day: date, approved_at: datetime) -> dict[str, Any]:
        return dict(
            timesheet_id=self.ts_id(n),
            employee_id=self.ids["employee"],
            project_id=self.ids["project"],
            work_date=day,
            hours=D(hours),
            billable=True,
            status="approved",
            approved_at=approved_at,
            notes="demo",
        )

    def _psa(self, stmt: Any) -> None:
        with self.psa.begin() as c:
            c.execute(stmt)

    def _crm(self, stmt: Any) -> None:
        with self.crm.begin() as c:
            c.execute(stmt)


def new_tag(clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> str:
    """A run tag: minutes since 2026-01-01, so reruns never collide."""
    return str(int((clock() - datetime(2026, 1, 1, tzinfo=UTC)).total_seconds() // 60) % 10**6)
