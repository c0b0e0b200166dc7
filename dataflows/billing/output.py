"""What the engine emits: the line and schedule changes of one change, as a ``Delta``.

:class:`Changes` collects them while a change is applied: the engine's current targets are
updated in place and it remembers each line's target from before the change, so only the
lines whose target really differs become updates. :class:`Merge` folds the deltas of one
source transaction into one; :func:`current` is every open target as updates from nothing
(a resumed step's resync).
"""

from __future__ import annotations

from dataflows.billing.target import (
    Delta,
    LineKey,
    LineTarget,
    LineUpdate,
    ScheduleLine,
    ScheduleUpdate,
)

NOTHING = Delta()


def line_key(update: LineUpdate) -> LineKey:
    return update.key


def _milestone_id(update: ScheduleUpdate) -> str:
    return update.milestone_id


class Changes:
    """The line targets (``lines``, the engine's, changed in place) and schedule updates of
    one change; ``before``: per line changed, its target before the change."""

    __slots__ = ("before", "lines", "schedule")

    def __init__(self, lines: dict[LineKey, LineTarget]) -> None:
        self.lines = lines
        self.before: dict[LineKey, LineTarget | None] = {}
        self.schedule: list[ScheduleUpdate] = []

    def set_line(self, item: LineKey, target: LineTarget | None) -> None:
        lines = self.lines
        current = lines.get(item)
        if current == target:
            return
        if item not in self.before:
            self.before[item] = current
        if target is None:
            del lines[item]
        else:
            lines[item] = target

    def delta(self) -> Delta:
        """The lines whose target differs from before, in key order, and the schedule's
        updates in milestone order."""
        changed, sched = self.before, self.schedule
        if not changed and not sched:
            return NOTHING
        lines = self.lines
        updates = tuple(
            LineUpdate(k, old, lines.get(k))
            for k, old in (sorted(changed.items()) if len(changed) > 1 else changed.items())
            if old != lines.get(k)
        )
        if len(sched) > 1:
            sched.sort(key=_milestone_id)
        return Delta(lines=updates, schedule=tuple(sched))


class Merge:
    """Folds several deltas into one: per item the first ``old`` and the last ``new``; an
    item released or reopened by any of them stays so (the writer needs to know)."""

    def __init__(self) -> None:
        self.lines: dict[LineKey, tuple[LineTarget | None, LineTarget | None]] = {}
        self.flags: dict[LineKey, tuple[bool, bool]] = {}
        self.schedule: dict[str, tuple[ScheduleLine | None, ScheduleLine | None]] = {}

    def add(self, delta: Delta) -> None:
        for u in delta.lines:
            first = self.lines[u.key][0] if u.key in self.lines else u.old
            self.lines[u.key] = (first, u.new)
            if u.released or u.reopened:
                released, reopened = self.flags.get(u.key, (False, False))
                self.flags[u.key] = (released or u.released, reopened or u.reopened)
        for s in delta.schedule:
            sfirst = self.schedule[s.milestone_id][0] if s.milestone_id in self.schedule else s.old
            self.schedule[s.milestone_id] = (sfirst, s.new)

    def delta(self) -> Delta:
        lines = []
        for k, (o, n) in sorted(self.lines.items()):
            released, reopened = self.flags.get(k, (False, False))
            if o != n or released or reopened:
                lines.append(LineUpdate(k, o, n, released=released, reopened=reopened))
        return Delta(
            lines=tuple(lines),
            schedule=tuple(
                ScheduleUpdate(k, o, n) for k, (o, n) in sorted(self.schedule.items()) if o != n
            ),
        )


def current(lines: dict[LineKey, LineTarget], schedule: dict[str, ScheduleLine]) -> Delta:
    """Every line target and schedule line as updates from nothing, in key order."""
    return Delta(
        lines=tuple(LineUpdate(k, None, t) for k, t in sorted(lines.items())),
        schedule=tuple(ScheduleUpdate(m, None, s) for m, s in sorted(schedule.items())),
    )
