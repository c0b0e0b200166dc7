"""The whole target state from full tables: the test oracle and ``billsync recon audit``.

Deliberately simple: classify every item, group candidates by contract, allocate each
contract at once. It shares only :mod:`rules`, :mod:`allocation` and the row look-ups of
:mod:`lookup` with the incremental engine, none of its bookkeeping.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from billsync.model import ROW_TYPES, ContractAmendment, ContractRate, Milestone, Row, Timesheet
from dataflows.billing.allocation import allocate
from dataflows.billing.lookup import RowLookup
from dataflows.billing.mappings import Mappings
from dataflows.billing.money import ZERO
from dataflows.billing.rules import (
    AMENDMENT_STATUSES,
    Candidate,
    Context,
    classify_milestone,
    classify_timesheet,
    schedule_line,
)
from dataflows.billing.target import LineKey, LineTarget, ScheduleLine, SourceType

TS = SourceType.TIMESHEET.value
MS = SourceType.MILESTONE.value


@dataclass(frozen=True)
class World:
    """The current rows of every source table: table name -> {primary key as text: row}."""

    tables: dict[str, dict[str, Row]] = field(default_factory=dict)

    @staticmethod
    def of(rows: Iterable[Row]) -> World:
        tables: dict[str, dict[str, Row]] = {name: {} for name in ROW_TYPES}
        for row in rows:
            tables[row.TABLE][row.key] = row
        return World(tables)

    def table(self, name: str) -> dict[str, Row]:
        return self.tables.get(name, {})

    def rows(self) -> Iterator[Row]:
        for rows in self.tables.values():
            yield from rows.values()


class _Lookup(RowLookup):
    """The rules' :class:`~dataflows.billing.rules.Context` over a :class:`World`."""

    def __init__(self, world: World) -> None:
        super().__init__({name: world.table(name) for name in ROW_TYPES})
        self._pending: set[str] = set()
        self._odd: dict[str, list[ContractAmendment]] = defaultdict(list)
        self._rates: dict[str, list[ContractRate]] = defaultdict(list)
        for row in world.table("contract_amendments").values():
            assert isinstance(row, ContractAmendment)
            if row.contract_id is not None:
                if row.status == "pending":
                    self._pending.add(row.contract_id)
                if row.status not in AMENDMENT_STATUSES:
                    self._odd[row.contract_id].append(row)
        for row in world.table("contract_rates").values():
            assert isinstance(row, ContractRate)
            if row.contract_id is not None:
                self._rates[row.contract_id].append(row)

    def amendment_pending(self, contract_id: str) -> bool:
        return contract_id in self._pending

    def odd_amendments(self, contract_id: str) -> Iterable[ContractAmendment]:
        return self._odd.get(contract_id, ())

    def rates(self, contract_id: str) -> Iterable[ContractRate]:
        return self._rates.get(contract_id, ())


def final_use(
    finals: Mapping[LineKey, LineTarget],
) -> dict[str, dict[str, tuple[Decimal, Decimal]]]:
    """Per contract and month, the retainer hours and the amount final items consumed."""
    use: dict[str, dict[str, tuple[Decimal, Decimal]]] = {}
    for target in finals.values():
        if target.contract_id is None or target.period is None:
            continue
        if target.covered_hours == 0 and target.billed_amount == 0:
            continue
        months = use.setdefault(target.contract_id, {})
        hours, billed = months.get(target.period, (ZERO, ZERO))
        months[target.period] = (hours + target.covered_hours, billed + target.billed_amount)
    return use


def context(world: World) -> Context:
    """The rules' context over ``world`` (e.g. for :func:`~dataflows.billing.rules.unexpected`)."""
    return _Lookup(world)


def compute_targets(
    world: World,
    mappings: Mappings,
    finals: Mapping[LineKey, LineTarget] | None = None,
) -> tuple[dict[LineKey, LineTarget], dict[str, ScheduleLine]]:
    """Every open line's target (SPEC 2) and every open invoice-schedule line, from full
    tables.

    ``finals`` is the record of final items (SPEC 2b, kept in the ERP): their frozen
    targets. They are left out of the result (their figures are frozen, not computed);
    open candidates are allocated against what they consumed in each retainer month and
    cap period.
    """
    finals = finals or {}
    ctx = _Lookup(world)
    lines: dict[LineKey, LineTarget] = {}
    by_contract: dict[str, list[Candidate]] = defaultdict(list)
    outcomes = [
        classify_timesheet(ts, ctx, mappings)
        for ts in world.table("timesheets").values()
        if isinstance(ts, Timesheet) and (TS, ts.key) not in finals
    ]
    schedule: dict[str, ScheduleLine] = {}
    for ms in world.table("milestones").values():
        assert isinstance(ms, Milestone)
        if (MS, ms.key) in finals:
            continue  # a final milestone's line and schedule line are frozen
        outcomes.append(classify_milestone(ms, ctx, mappings))
        line = schedule_line(ms, ctx)
        if line is not None:
            schedule[ms.milestone_id] = line
    for outcome in outcomes:
        if isinstance(outcome, Candidate):
            by_contract[outcome.contract_id].append(outcome)
        elif outcome is not None:
            lines[outcome.key] = outcome
    use = final_use(finals)
    for contract_id, candidates in by_contract.items():
        contract = ctx.contract(contract_id)
        assert contract is not None  # a candidate's contract is known (rule 6)
        lines.update(allocate(contract, candidates, final_use=use.get(contract_id)))
    return lines, schedule
