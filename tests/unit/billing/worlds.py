"""Tiny worlds for table-driven billing tests: one happy line, then one change per case."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from billsync.model import (
    Account,
    Contract,
    ContractRate,
    Employee,
    Milestone,
    Project,
    Row,
    Timesheet,
)
from dataflows.billing.batch import World, compute_targets
from dataflows.billing.mappings import Mappings
from dataflows.billing.target import LineTarget, ScheduleLine

D = Decimal
MAPPINGS = Mappings.of(
    {
        "CONSULTANT": ("SVC-CON", "4010"),
        "MANAGER": ("SVC-MGR", "4020"),
        "MILESTONE": ("FIX-MLS", "4100"),
    },
    {"GB": D("0.20"), "DE": D("0.19"), "US-NY": D("0.08875")},
)
NO_MILESTONE_MAPPING = Mappings.of({"CONSULTANT": ("SVC-CON", "4010")}, {"GB": D("0.20")})


def at(day: int, hour: int = 10, month: int = 3) -> datetime:
    return datetime(2024, month, day, hour, tzinfo=UTC)


def base_rows() -> dict[str, Row]:
    """Named rows of a world where timesheet 1 bills 7.5 h x 150.00 = 1125.00 + 20% tax."""
    return {
        "A1": Account("A1", "Acme", "GB", "GBP", "CUST-1"),
        "C1": Contract(
            "C1", "A1", "K-1", "time_and_materials", "active", "GBP",
            date(2024, 1, 1), date(2024, 12, 31),
        ),
        "P1": Project("P1", "PRJ1", "Project 1", "A1", "C1", "active", "UK-LTD"),
        "E1": Employee("E1", "Eve", "eve@x", "CONSULTANT", "CC-10", "UK-LTD", True),
        "R1": ContractRate("R1", "C1", "CONSULTANT", D("150.00"), date(2024, 1, 1), None),
        "T1": Timesheet(1, "E1", "P1", date(2024, 3, 15), D("7.50"), True, "approved", at(16)),
    }  # fmt: skip


def milestone_rows() -> dict[str, Row]:
    """A milestone contract C2 (project P2) with accepted milestone M1 of 5000.00."""
    rows = base_rows()
    rows["C2"] = Contract("C2", "A1", "K-2", "milestone", "active", "GBP", date(2024, 1, 1), None)
    rows["P2"] = Project("P2", "PRJ2", "Project 2", "A1", "C2", "active", "UK-LTD")
    rows["M1"] = Milestone(
        "M1", "P2", "Design", D("5000.00"), date(2024, 4, 30), "accepted", at(20)
    )
    return rows


def edit(rows: dict[str, Row], name: str, **changes: Any) -> dict[str, Row]:
    """A copy of ``rows`` with ``rows[name]`` changed (``None`` deletes it)."""
    out = dict(rows)
    if changes.get("_delete"):
        del out[name]
    else:
        out[name] = replace(out[name], **changes)
    return out


def targets(
    rows: dict[str, Row], mappings: Mappings = MAPPINGS
) -> tuple[dict[tuple[str, str], LineTarget], dict[str, ScheduleLine]]:
    return compute_targets(World.of(rows.values()), mappings)


def line(
    rows: dict[str, Row], key: tuple[str, str], mappings: Mappings = MAPPINGS
) -> LineTarget | None:
    return targets(rows, mappings)[0].get(key)
