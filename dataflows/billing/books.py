"""The engine's allocation: per contract with candidates, its book kept up to date.

:mod:`~dataflows.billing.allocation` holds the pure computation
(:class:`~dataflows.billing.allocation.Prefix`, :class:`~dataflows.billing.allocation.Book`);
:class:`Books` applies the candidates that one change moved to the books of their
contracts, incrementally: each retainer month and each cap period (a month, or the whole
contract) keeps its members in order with what each took and the running total; a change
recomputes from its order position on and stops as soon as the running total after an old
member is what it was. A member whose retainer coverage changed gets a new billable amount,
which is a change in its cap group. A contract with neither cap nor retainer keeps no group:
its candidates are billed in full, independently. A cap raised or lowered re-runs the
contract's cap groups; any other change of the allocation columns rebuilds the contract's
book. A change of what its final items consumed (a close, a final item released) moves the
limit of a few groups — what final items left of a month's allowance or a period's cap —:
the items made final leave their groups, and each group whose limit moved is re-run from its
first member, like a cap moved (before 2026-12-01 the whole book was rebuilt, ~0.4 ms per
correction of a final line in `bench core`).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from dataflows.billing.allocation import (
    WHOLE_CONTRACT,
    Book,
    Config,
    Entry,
    Prefix,
    Removal,
    billable_of,
    config_of,
    line_of,
    retained,
)
from dataflows.billing.money import ZERO
from dataflows.billing.output import Changes
from dataflows.billing.rules import Candidate, Context
from dataflows.billing.target import LineKey

if TYPE_CHECKING:  # EngineState stays in engine.py (pickles name it there), which imports us
    from dataflows.billing.engine import EngineState

Touch = dict[LineKey, tuple[Candidate | None, Candidate | None]]  # item -> (old, new) candidate
Moves = dict[str, tuple[list[Removal], list[Entry]]]  # group -> (members out, members in)


def _only_cap_moved(old: Config, new: Config) -> bool:
    """Only the cap amount differs (retainer, allowance and cap period as before)."""
    return old[:2] == new[:2] and old[3] == new[3] and old[2] is not None and new[2] is not None


class Books:
    """Group membership of the candidates and the allocation books of their contracts."""

    def __init__(self, st: EngineState, ctx: Context) -> None:
        self._st = st
        self._ctx = ctx

    def join(self, cand: Candidate, item: LineKey) -> None:
        self._st.members.setdefault(cand.contract_id, {}).setdefault(cand.month, set()).add(item)

    def leave(self, cand: Candidate, item: LineKey) -> None:
        members = self._st.members
        months = members.get(cand.contract_id)
        if months is None:
            return
        group = months.get(cand.month)
        if group is not None:
            group.discard(item)
            if not group:
                del months[cand.month]
        if not months:
            del members[cand.contract_id]

    def update(self, touched: dict[str, Touch], relimit: set[str], out: Changes) -> None:
        """Re-allocate each contract of ``touched`` for its changed candidates; for those of
        ``relimit`` (contracts whose final consumption changed: a close, a final item
        released) also re-run every group whose limit — what the final items left — moved."""
        for contract_id, touch in touched.items():
            self._allocate(contract_id, touch, out, relimit=contract_id in relimit)

    def _allocate(
        self, contract_id: str, touch: Touch, out: Changes, *, relimit: bool = False
    ) -> None:
        """Retainer and cap for the changed candidates of one contract, incrementally.

        Each retainer month and cap period is a :class:`~dataflows.billing.allocation.Prefix`:
        a change recomputes that group from the changed order position on, until the running
        total is what it was. A member whose coverage changed gets a new billable amount,
        which is a change in its cap group. A contract whose allocation columns changed (or
        that has no book yet) is rebuilt from all its candidates.
        """
        st = self._st
        contract = self._ctx.contract(contract_id)
        if contract is None:
            st.books.pop(contract_id, None)  # every candidate of it has left (rule 6)
            return
        config = config_of(contract)
        book = st.books.get(contract_id)
        billed: dict[LineKey, Decimal] = {}
        if book is not None and book.config != config and _only_cap_moved(book.config, config):
            book.config = config  # the same groups under a new cap: re-run them from the start
            assert config[2] is not None
            for key, group in book.caps.items():
                billed.update(group.relimit(self._left(contract_id, key, config[2], hours=False)))
        elif book is None or book.config != config:
            self._rebuild(contract_id, Book(config), touch, out)
            return
        retainer, _allowance, cap, _monthly = config
        if not retainer and cap is None:  # members are independent: each is billed in full
            for item, (_old, new) in touch.items():
                if new is not None:
                    out.set_line(item, new.target)
            return
        covered: dict[LineKey, Decimal] = {}
        if retainer:
            allowance = book.config[1]
            retainer_left = lambda g: self._left(contract_id, g, allowance, hours=True)  # noqa: E731  # a named one-liner, used twice
            _run(book.retainer, retainer_left, _retainer_moves(touch), covered)
            if relimit:
                _relimit(book.retainer, retainer_left, covered)
        billable: dict[LineKey, Decimal] = {}
        if cap is not None:
            cap_left = lambda g: self._left(contract_id, g, cap, hours=False)  # noqa: E731  # as above
            moves = self._cap_moves(book, touch, covered, billable)
            _run(book.caps, cap_left, moves, billed)
            if relimit:
                _relimit(book.caps, cap_left, billed)
        fresh = [item for item, (_old, new) in touch.items() if new is not None]
        emit = set(fresh)
        emit.update(covered)
        emit.update(billed)
        candidates = st.candidates
        for item in emit:
            cand = candidates.get(item)
            if cand is None or cand.contract_id != contract_id:
                continue  # re-capped, then left the contract in this same change
            if item in covered:
                cov = covered[item]
            elif retainer and retained(cand):
                cov = book.retainer[cand.month].take_of(cand.order, item)
            else:
                cov = ZERO
            amount = billable[item] if item in billable else billable_of(cand, cov)
            if item in billed:
                bill = billed[item]
            elif cap is not None:
                bill = book.caps[book.period(cand)].take_of(cand.order, item)
            else:
                bill = amount
            self._emit(item, cand, cov, amount, bill, item in touch, out)

    def _cap_moves(
        self,
        book: Book,
        touch: Touch,
        covered: dict[LineKey, Decimal],
        billable: dict[LineKey, Decimal],
    ) -> Moves:
        """Cap-group changes: touched candidates, and members whose coverage changed."""
        moves: Moves = {}
        for item, (old, new) in touch.items():
            if old is not None:
                moves.setdefault(book.period(old), ([], []))[0].append((old.order, item))
            if new is not None:
                amount = billable[item] = billable_of(new, covered.get(item, ZERO))
                moves.setdefault(book.period(new), ([], []))[1].append((new.order, item, amount))
        for item, cov in covered.items():
            if item in touch:
                continue
            cand = self._st.candidates[item]
            amount = billable[item] = billable_of(cand, cov)
            period = book.period(cand)
            if book.caps[period].x_of(cand.order, item) != amount:
                move = moves.setdefault(period, ([], []))
                move[0].append((cand.order, item))
                move[1].append((cand.order, item, amount))
        return moves

    def _rebuild(self, contract_id: str, book: Book, touch: Touch, out: Changes) -> None:
        """Allocate every candidate of a contract from scratch into a new book."""
        st = self._st
        months = st.members.get(contract_id)
        if not months:
            st.books.pop(contract_id, None)
            return
        st.books[contract_id] = book
        retainer, allowance, cap, _monthly = book.config
        candidates = [(k, st.candidates[k]) for group in months.values() for k in group]
        covered: dict[LineKey, Decimal] = {}
        if retainer:
            by_month: dict[str, list[Entry]] = {}
            for item, cand in candidates:
                if retained(cand):
                    assert cand.hours is not None
                    by_month.setdefault(cand.month, []).append((cand.order, item, cand.hours))
            for month, entries in by_month.items():
                group = book.retainer[month] = Prefix(
                    self._left(contract_id, month, allowance, hours=True)
                )
                covered.update(group.fill(entries))
        billable = {item: billable_of(cand, covered.get(item, ZERO)) for item, cand in candidates}
        billed: dict[LineKey, Decimal] = billable
        if cap is not None:
            by_period: dict[str, list[Entry]] = {}
            for item, cand in candidates:
                by_period.setdefault(book.period(cand), []).append(
                    (cand.order, item, billable[item])
                )
            billed = {}
            for period, entries in by_period.items():
                group = book.caps[period] = Prefix(
                    self._left(contract_id, period, cap, hours=False)
                )
                billed.update(group.fill(entries))
        for item, cand in candidates:
            amount = billable[item]
            self._emit(
                item, cand, covered.get(item, ZERO), amount, billed[item], item in touch, out
            )

    def _left(self, contract_id: str, group: str, raw: Decimal, *, hours: bool) -> Decimal:
        """What final items left of a retainer month's allowance (``hours``) or of a cap
        period's cap."""
        used_hours, used_billed = self._st.finals.used(
            contract_id, None if group == WHOLE_CONTRACT else group
        )
        return raw - (used_hours if hours else used_billed)

    def _emit(
        self,
        item: LineKey,
        cand: Candidate,
        covered: Decimal,
        billable: Decimal,
        billed: Decimal,
        fresh: bool,
        out: Changes,
    ) -> None:
        """Set a candidate's target from its figures (unchanged figures of an unchanged
        candidate keep the current target: state, reason and tax follow from them)."""
        if not fresh:
            cur = out.lines.get(item)
            if (
                cur is not None
                and cur.billed_amount == billed
                and cur.billable_amount == billable
                and cur.held_amount == billable - billed
                and cur.covered_hours == covered
            ):
                return
        out.set_line(item, line_of(cand, covered, billable, billed))


def _retainer_moves(touch: Touch) -> Moves:
    moves: Moves = {}
    for item, (old, new) in touch.items():
        if old is not None and retained(old):
            moves.setdefault(old.month, ([], []))[0].append((old.order, item))
        if new is not None and retained(new):
            assert new.hours is not None
            moves.setdefault(new.month, ([], []))[1].append((new.order, item, new.hours))
    return moves


def _relimit(
    groups: dict[str, Prefix], limit_of: Callable[[str], Decimal], out: dict[LineKey, Decimal]
) -> None:
    """Re-run, from its first member, every group whose limit moved (what final items left
    of it changed); the new take of every member whose take changed."""
    for key, group in groups.items():
        limit = limit_of(key)
        if limit != group.limit:
            out.update(group.relimit(limit))


def _run(
    groups: dict[str, Prefix],
    limit_of: Callable[[str], Decimal],
    moves: Moves,
    out: dict[LineKey, Decimal],
) -> None:
    for key, (removes, inserts) in moves.items():
        group = groups.get(key)
        if group is None:
            group = groups[key] = Prefix(limit_of(key))
        out.update(group.update(removes, inserts))
        if not len(group):
            del groups[key]
