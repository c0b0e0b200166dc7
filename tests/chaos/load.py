"""A steady load of source changes for the chaos tests: a background thread on its own world.

The world is the e2e story's (``Story.world``: accounts, T&M / capped / retainer / amended
contracts, rates, employees, projects, lines in every state). The thread then writes, one
transaction per change, about ``rate`` changes a second, chosen at random:

- PSA: new approved lines (and submitted ones, approved later), edited hours, lines moved to
  another project, deleted lines, a project put on hold and released;
- CRM: the capped contract's cap raised and lowered, a contract suspended and reactivated,
  amendments opened and approved, a rate changed.

A write that fails (a database is being restarted) is counted and skipped: what was not
committed is not part of the target. The target is whatever the source rows are when the load
stops, so the test checks the ERP against ``billsync recon audit`` (the batch recomputation
of SPEC 2), not against a hand-computed expectation.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal

from tests.e2e.harness import Sources
from tests.e2e.story import Story, at

D = Decimal
# projects of the story's world whose lines are billable, capped, covered or held by turns
PROJECTS = ("TM", "CAP", "RET", "AMD", "MOVE", "HOLD")


class Load:
    """``start()`` the writer thread, ``stop()`` it; ``counts`` says what was written."""

    def __init__(self, sources: Sources, prefix: str, *, seed: int | None = None) -> None:
        self.story = Story(sources, prefix)
        self.s = sources
        self.rng = random.Random(seed)
        self.lines: dict[int, str] = {}  # timesheet number -> status, as last committed
        self.next_line = 100
        self.amendments = 0
        self.counts: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.rate = 4.0

    # --- the world ---------------------------------------------------------------------------

    def world(self) -> None:
        self.story.world()
        for n, row in self._story_lines().items():
            self.lines[n] = row

    def _story_lines(self) -> dict[int, str]:
        return {n: "approved" for n in (20, 22, 23, 30, 31, 32, 40, 41, 42)}

    # --- the thread ----------------------------------------------------------------------------

    def start(self, rate: float = 4.0) -> None:
        self.rate = rate
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="chaos-load", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        actions: list[tuple[Callable[[], None], int]] = [
            (self.new_line, 6),
            (self.approve, 2),
            (self.edit, 4),
            (self.move, 1),
            (self.delete, 1),
            (self.hold, 1),
            (self.cap, 1),
            (self.suspend, 1),
            (self.amend, 1),
            (self.rerate, 1),
        ]
        funcs = [a for a, _ in actions]
        weights = [w for _, w in actions]
        while not self._stop.is_set():
            action = self.rng.choices(funcs, weights)[0]
            try:
                action()
                self.counts[action.__name__] += 1
            except Exception as exc:  # a database is down: counted, the load goes on
                self.counts["failed"] += 1
                self.failures.append(f"{action.__name__}: {type(exc).__name__}: {exc}"[:300])
                self._stop.wait(0.5)
            self._stop.wait(1.0 / self.rate)

    # --- PSA changes ---------------------------------------------------------------------------

    def _pick(self, status: str | None = None) -> int | None:
        pool = [n for n, st in self.lines.items() if status is None or st == status]
        return self.rng.choice(pool) if pool else None

    def new_line(self) -> None:
        n = self.next_line
        self.next_line += 1
        status = "approved" if self.rng.random() < 0.8 else "submitted"
        row = self.story._timesheet(
            n,
            "CON",
            self.rng.choice(PROJECTS),
            f"{self.rng.randint(1, 16) / 2:.2f}",
            self.rng.randint(1, 28),
            status=status,
            hour=self.rng.randint(0, 23),
        )
        row["work_date"] = date(2025, 3, 1) + timedelta(days=self.rng.randrange(31))
        self.s.insert("timesheets", [row])
        self.lines[n] = status

    def approve(self) -> None:
        n = self._pick("submitted")
        if n is None:
            return
        when = at(self.rng.randint(1, 28), self.rng.randint(0, 23))
        self.s.update("timesheets", self.story.ts(n), status="approved", approved_at=when)
        self.lines[n] = "approved"

    def edit(self) -> None:
        n = self._pick()
        if n is not None:
            hours = D(self.rng.randint(1, 20)) / 2
            self.s.update("timesheets", self.story.ts(n), hours=hours)

    def move(self) -> None:
        n = self._pick()
        if n is not None:
            project = self.story.id("PRJ", self.rng.choice(PROJECTS))
            self.s.update("timesheets", self.story.ts(n), project_id=project)

    def delete(self) -> None:
        n = self._pick()
        if n is not None:
            self.s.delete("timesheets", self.story.ts(n))
            del self.lines[n]

    def hold(self) -> None:
        status = self.rng.choice(("active", "on_hold"))
        self.s.update("projects", self.story.id("PRJ", "HOLD"), status=status)

    # --- CRM changes ---------------------------------------------------------------------------

    def cap(self) -> None:
        amount = D(self.rng.randrange(500, 3000, 50)).quantize(D("0.01"))
        self.s.update("contracts", self.story.id("CON", "CAP"), cap_amount=amount)

    def suspend(self) -> None:
        status = self.rng.choice(("active", "suspended"))
        self.s.update("contracts", self.story.id("CON", "TM"), status=status)

    def amend(self) -> None:
        if self.amendments and self.rng.random() < 0.6:
            self.s.update(
                "contract_amendments",
                self.story.id("AMD", f"L{self.amendments}"),
                status=self.rng.choice(("approved", "rejected")),
            )
            return
        self.amendments += 1
        self.s.insert(
            "contract_amendments",
            [
                {
                    "amendment_id": self.story.id("AMD", f"L{self.amendments}"),
                    "contract_id": self.story.id("CON", "AMD"),
                    "status": "pending",
                    "effective_date": date(2025, 5, 1),
                }
            ],
        )

    def rerate(self) -> None:
        rate = D(self.rng.randrange(80, 160, 5)).quantize(D("0.01"))
        self.s.update("contract_rates", self.story.id("RATE", "0"), hourly_rate=rate)

    # --- waiting -------------------------------------------------------------------------------

    def run_for(self, seconds: float) -> None:
        """Block while the load runs (it keeps running afterwards)."""
        end = time.monotonic() + seconds
        while time.monotonic() < end and self.running():
            time.sleep(0.2)

    def summary(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(self.counts.items()))
