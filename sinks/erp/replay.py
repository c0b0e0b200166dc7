"""The replay gate: what the ERP already applied is not posted again after a restart (SPEC 4).

The billing step sends, after the emissions of each *unit* it applied (one source
transaction, or one change outside a transaction), a :class:`~dataflows.emissions.Progress`
with the unit's ``covers`` (per input partition ``"topic:partition"``, the highest Kafka
offset the unit released); whenever it starts, it first sends ``Progress(covers=<what its
snapshot held, () when fresh>, resumed=True)``. The ERP records, in the same transaction as
each batch, the highest covered offset per partition (``billing_progress``: ``hw``).

:class:`ReplayGate` (pure: no I/O; the sink feeds it items and applies what it returns) cuts
the item stream into units and decides how each is applied:

- **Normal**: the units of one ``feed`` become one :class:`Steps` batch, applied step by step
  with their ``covers`` (:meth:`~sinks.erp.writer.ErpWriter.apply`). Emissions after the
  last ``Progress`` of a feed wait for the next feed (their unit is not complete: a source
  transaction is applied whole).
- **Replay**: at the ``resumed`` marker, ``pending`` = the partitions whose ``hw`` is above
  what the snapshot held (a partition missing from the marker: -1). While a partition is
  pending, units are gathered, not applied; ``seen[k]`` advances with each unit's covers.
  Once ``seen[k] >= hw[k]`` for every pending ``k``, the gathered units are applied as ONE
  :class:`Coalesced` batch (:meth:`~sinks.erp.writer.ErpWriter.apply_coalesced`) and the
  gate is normal again. A fresh start into an ERP with progress rows is a rebuild from the
  topics' beginning: the whole prefix up to ``hw`` is coalesced too.
- **Legacy**: until the first ``Progress`` (a writer fed without them), emissions are applied
  as they come, without covers — the behaviour before input progress existed.

**Resync.** Right after its ``resumed`` marker, a billing step resumed from a snapshot sends
one unit more: the current target of every open line and milestone, ending with a
``Progress(resync=True)`` that covers nothing. While a prefix is gathered it is the prefix's
first unit (every later emission of a line overrides it); otherwise it is dropped. It closes
a hole of interleaving: the killed run may have committed a line's *intermediate* target —
e.g. a PSA unit freed cap and billed line X, and the kill came before a CRM unit that holds
it again was applied — while the resumed run, applying the same units in another
interleaving across sources (the CRM unit first), never changes X and so never emits it;
without the resync the ERP kept X billed (seen in the kill loop, chaos 01).

Why a coalesced batch posts nothing new. A replay re-sends exactly the units after the
snapshot, in the same order per partition, so after the prefix every line's last target is
the one the ERP holds: diffed against the ERP it posts nothing, changes no line state, emits
no event and marks no recon key. Where the interleaving of partitions differs (several
sources), the last targets may differ from the ERP's: the difference is posted once, under
the line's last emission's position, or under the item's newest ledger position when that
one is later in the same source (:func:`sinks.erp.writer.not_behind`: the ledger's positions
never go backwards).

What the gate keeps while gathering is bounded by the replay range, and smaller: per line and
per milestone only its LAST emission (with the flag whether any emission of the prefix
reopened it: a ``CHANGED_AFTER_CLOSE`` correction if the ERP still holds it final), plus the
prefix's period events.

Closes and reopens inside the prefix (SPEC 2b) were applied by the ERP when it applied their
unit. A line emitted in the prefix ends with the ``final`` flag that the in-order application
gives: its last emission sets it open, and only the period events AFTER that emission touch
it — :func:`final_after` replays them on the line's last target with the writer's own
predicate (:func:`dataflows.billing.periods.becomes_final`; a reopen undoes the close that
made it final). A line not emitted in the prefix is as the ERP holds it (the ERP applied the
same events to it). The coalesced apply therefore applies no period event the ERP already
applied; one beyond the ERP's ``hw`` (possible only when partitions interleave differently)
is applied first, before the lines, which then get their computed flags.

The gate's state is the sink partition's Bytewax snapshot (:meth:`ReplayGate.snapshot`):
gathered units are in no ERP transaction yet, and a snapshot taken while gathering must not
lose them to a second crash.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from dataflows.billing.periods import CLOSE, becomes_final
from dataflows.billing.target import LineKey, LineTarget, LineUpdate, PeriodEvent, ScheduleUpdate
from dataflows.emissions import Covers, Emission, Progress
from sinks.erp.writer import highest


@dataclass(frozen=True, slots=True)
class Steps:
    """Emissions to apply step by step in one transaction. ``covers``: the units' highest
    offsets per partition (None: legacy, no input progress known)."""

    emissions: tuple[Emission, ...]
    covers: Covers | None
    letters: tuple[dict[str, Any], ...] = ()  # dead letters of the units (billing.dlq)


@dataclass(frozen=True, slots=True)
class Coalesced:
    """A replayed prefix, applied as one batch (see the module docstring)."""

    lines: tuple[Emission, ...]  # per line and milestone its last emission, in stream order
    finals: Mapping[LineKey, str]  # final_period of the lines that end final
    periods: tuple[tuple[PeriodEvent, Covers], ...]  # the prefix's closes/reopens, in order
    covers: Covers
    units: int
    reached: Covers  # the ERP's offsets the replay had to pass (hw of the pending partitions)
    letters: tuple[dict[str, Any], ...] = ()  # dead letters beyond what the ERP applied


Action = Steps | Coalesced


def final_after(target: LineTarget | None, events: Iterable[PeriodEvent]) -> str | None:
    """The ``final_period`` of a line whose last emission set ``target``, after ``events``
    (the period events that follow it, in order): a close makes it final as
    ``ErpWriter._apply_period`` would, the reopen of that same period makes it open again."""
    final: str | None = None
    if target is None:
        return None
    for event in events:
        if event.kind == CLOSE:
            if final is None and becomes_final(target, event.period):
                final = event.period
        elif final == event.period:
            final = None
    return final


@dataclass(slots=True)
class Gathering:
    """A replayed prefix being gathered: ``pending`` partitions' hw to reach, what was seen."""

    pending: dict[str, int]
    seen: dict[str, int]
    seq: int = 0
    lines: dict[LineKey, tuple[int, Emission]] = field(default_factory=dict)
    schedule: dict[str, tuple[int, Emission]] = field(default_factory=dict)
    periods: list[tuple[int, PeriodEvent, Covers]] = field(default_factory=list)
    covers: dict[str, int] = field(default_factory=dict)
    units: int = 0
    letters: list[dict[str, Any]] = field(default_factory=list)

    def add(
        self, emissions: Sequence[Emission], covers: Covers, letters: Sequence[dict[str, Any]] = ()
    ) -> None:
        """One unit: its emissions (each line's last one kept), its covers, and its dead
        letters — kept only beyond the ERP's offsets: the ERP wrote the others with the unit
        that covered them."""
        for letter in letters:
            key = f"{letter.get('topic')}:{letter.get('partition') or 0}"
            offset = letter.get("offset")
            if not isinstance(offset, int) or offset > self.pending.get(key, -1):
                self.letters.append(letter)
        for em in emissions:
            self.seq += 1
            update = em.update
            if isinstance(update, LineUpdate):
                kept = self.lines.get(update.key)
                if kept is not None and _reopened(kept[1]) and not update.reopened:
                    em = replace(em, update=replace(update, reopened=True))
                self.lines[update.key] = (self.seq, em)
            elif isinstance(update, ScheduleUpdate):
                self.schedule[update.milestone_id] = (self.seq, em)
            else:
                self.periods.append((self.seq, update, covers))
        _raise(self.seen, covers)
        _raise(self.covers, covers)
        self.units += 1

    def copy(self) -> Gathering:
        return Gathering(
            dict(self.pending),
            dict(self.seen),
            self.seq,
            dict(self.lines),
            dict(self.schedule),
            list(self.periods),
            dict(self.covers),
            self.units,
            list(self.letters),
        )

    def reached(self) -> bool:
        return all(self.seen.get(k, -1) >= hw for k, hw in self.pending.items())

    def coalesce(self) -> Coalesced:
        kept = sorted([*self.lines.values(), *self.schedule.values()], key=lambda s: s[0])
        finals: dict[LineKey, str] = {}
        for seq, em in self.lines.values():
            assert isinstance(em.update, LineUpdate)
            after = (event for at, event, _c in self.periods if at > seq)
            final = final_after(em.update.new, after)
            if final is not None:
                finals[em.update.key] = final
        return Coalesced(
            lines=tuple(em for _seq, em in kept),
            finals=finals,
            periods=tuple((event, covers) for _seq, event, covers in self.periods),
            covers=tuple(sorted(self.covers.items())),
            units=self.units,
            reached=tuple(sorted(self.pending.items())),
            letters=tuple(self.letters),
        )


@dataclass(slots=True)
class GateState:
    """What :class:`ReplayGate` keeps across a restart (the sink's Bytewax snapshot)."""

    tracking: bool
    carry: list[Emission]
    gathering: Gathering | None
    letters: list[dict[str, Any]] = field(default_factory=list)  # of the unit not complete


class ReplayGate:
    """Cuts the billing step's items into units and decides how each is applied (see the
    module docstring). Fed by the sink: :meth:`resume` at a ``resumed`` marker (with what
    the ERP committed), :meth:`feed` with everything between (no ``resumed`` marker)."""

    def __init__(self, state: GateState | None = None) -> None:
        self._s = state if state is not None else GateState(False, [], None)

    @property
    def gathering(self) -> Gathering | None:
        return self._s.gathering

    def snapshot(self) -> GateState | None:
        """The state to keep, or None when there is nothing to keep (the usual case). A copy
        (the emissions are immutable, the containers are copied): Bytewax may serialise it
        after the next items have changed the gate."""
        s = self._s
        if not s.carry and not s.letters and s.gathering is None:
            return None
        gathering = s.gathering.copy() if s.gathering is not None else None
        return GateState(s.tracking, list(s.carry), gathering, list(s.letters))

    def resume(self, covers: Covers, committed: Mapping[str, int]) -> list[Action]:
        """The billing step (re)started from a snapshot holding ``covers`` (fresh: ``()``);
        ``committed`` is what the ERP applied (``billing_progress``)."""
        self._s.tracking = True
        held = highest(covers)
        pending = {k: hw for k, hw in committed.items() if hw > held.get(k, -1)}
        gathering = self._s.gathering  # restored from a snapshot taken while gathering
        if gathering is None:
            gathering = Gathering(pending, held)
        else:
            gathering.pending = pending
            _raise(gathering.seen, covers)
        self._s.gathering = gathering
        if gathering.reached():
            return self._release()
        return []

    def feed(self, items: Sequence[Emission | Progress | dict[str, Any]]) -> list[Action]:
        """Items in the billing step's order (no ``resumed`` marker among them); a dict is
        a dead letter of the unit it precedes the ``Progress`` of."""
        out: list[Action] = []
        units: list[Emission] = []  # the complete units to apply normally
        letters: list[dict[str, Any]] = []
        covers: dict[str, int] = {}
        carry = self._s.carry
        held = self._s.letters
        for item in items:
            if isinstance(item, Emission):
                carry.append(item)
                continue
            if isinstance(item, dict):
                held.append(item)
                continue
            self._s.tracking = True
            gathering = self._s.gathering
            if item.resync and gathering is None:  # nothing replayed: the ERP is in step
                carry.clear()
                held.clear()
                continue
            if gathering is not None:
                gathering.add(carry, item.covers, held)
                if gathering.reached():
                    out += self._release()  # the units after it are normal again
            else:
                units += carry
                letters += held
                _raise(covers, item.covers)
            carry.clear()
            held.clear()
        if units or covers or letters:
            out.append(Steps(tuple(units), tuple(sorted(covers.items())), tuple(letters)))
        if not self._s.tracking and (carry or held):
            out.append(Steps(tuple(carry), None, tuple(held)))
            carry.clear()
            held.clear()
        return out

    def _release(self) -> list[Action]:
        gathering = self._s.gathering
        assert gathering is not None
        self._s.gathering = None
        return [gathering.coalesce()] if gathering.units else []


def _reopened(em: Emission) -> bool:
    return isinstance(em.update, LineUpdate) and em.update.reopened


def _raise(into: dict[str, int], covers: Covers) -> None:
    for key, offset in covers:
        if offset > into.get(key, -1):
            into[key] = offset
