"""What the flow keeps of final items (SPEC 2b): a few numbers each, in immutable segments.

A final item's line state and ledger live in the ERP. The engine keeps of it only what it
needs to (1) recognise a change of its own row (a digest of the columns that bill), and
(2) allocate open candidates against what it consumed: its contract, its month, the
retainer hours it covered and the amount it billed. These are :class:`FinalStub` values.

The stubs of one close form a :class:`FinalSegment`: built once, never changed, stored as
packed columns (about 50 bytes an item), so a recovery pickler can write a segment once and
refer to it afterwards (``dataflows/logic.py``): the per-epoch snapshot does not grow with
final items. :class:`Finals` is the mutable part, small: the segments, the keys that left a
segment (reopened by their own row), the periods reopened whose items wait for their rows,
and per contract and month the consumption of the items that still hold it.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal

from dataflows.billing.money import ZERO
from dataflows.billing.target import LineKey, SourceType

TS = SourceType.TIMESHEET.value
MS = SourceType.MILESTONE.value
_HUNDRED = Decimal(100)


@dataclass(frozen=True, slots=True)
class FinalStub:
    """What the flow keeps of one final item."""

    key: LineKey
    final_period: str
    contract_id: str | None  # the contract whose allocation it consumed (None: no candidate)
    month: str | None  # its period: the retainer month and `month` cap period it consumed in
    covered: Decimal  # retainer hours it covered
    billed: Decimal  # amount it billed (counts against the cap)
    digest: int  # periods.own_digest of its own row when it became final
    lsn: int = -1  # source position (LSN) of that row: an older change of it is stale


def _cents(value: Decimal) -> int:
    return int(value * _HUNDRED)


def _decimal(cents: int) -> Decimal:
    return (Decimal(cents) / _HUNDRED).quantize(Decimal("0.01"))


class FinalSegment:
    """The stubs of one close, immutable and packed: timesheet ids in a sorted ``array('q')``,
    milestone ids in a sorted tuple, the figures in parallel arrays (hundredths)."""

    __slots__ = (
        "_billed",
        "_contract",
        "_covered",
        "_digest",
        "_lsn",
        "_month",
        "_ms_ids",
        "_names",
        "_ts_ids",
        "period",
        "seq",
    )

    def __init__(self, seq: int, period: str, stubs: Iterable[FinalStub]) -> None:
        self.seq = seq
        self.period = period
        ordered = sorted(stubs, key=lambda s: (s.key[0] != TS, _sort_key(s.key)))
        names: dict[str | None, int] = {None: 0}
        for s in ordered:
            names.setdefault(s.contract_id, len(names))
            names.setdefault(s.month, len(names))
        self._names: tuple[str | None, ...] = tuple(names)
        ts = [s for s in ordered if s.key[0] == TS]
        self._ts_ids = array("q", (int(s.key[1]) for s in ts))
        self._ms_ids = tuple(s.key[1] for s in ordered[len(ts) :])
        self._contract = array("I", (names[s.contract_id] for s in ordered))
        self._month = array("I", (names[s.month] for s in ordered))
        self._covered = array("q", (_cents(s.covered) for s in ordered))
        self._billed = array("q", (_cents(s.billed) for s in ordered))
        self._digest = array("Q", (s.digest for s in ordered))
        self._lsn = array("q", (s.lsn for s in ordered))

    def __getstate__(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state: tuple[object, ...]) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            object.__setattr__(self, name, value)

    def __len__(self) -> int:
        return len(self._digest)

    def _index(self, key: LineKey) -> int | None:
        if key[0] == TS:
            try:
                wanted = int(key[1])
            except ValueError:
                return None
            ids = self._ts_ids
            if not ids or wanted < ids[0] or wanted > ids[-1]:
                return None  # outside this close's id range: no search (most segments)
            i = bisect_left(ids, wanted)
            return i if i < len(self._ts_ids) and self._ts_ids[i] == wanted else None
        i = bisect_left(self._ms_ids, key[1])
        if i < len(self._ms_ids) and self._ms_ids[i] == key[1]:
            return len(self._ts_ids) + i
        return None

    def _stub(self, i: int) -> FinalStub:
        n = len(self._ts_ids)
        key = (TS, str(self._ts_ids[i])) if i < n else (MS, self._ms_ids[i - n])
        return FinalStub(
            key=key,
            final_period=self.period,
            contract_id=self._names[self._contract[i]],
            month=self._names[self._month[i]],
            covered=_decimal(self._covered[i]),
            billed=_decimal(self._billed[i]),
            digest=self._digest[i],
            lsn=self._lsn[i],
        )

    def get(self, key: LineKey) -> FinalStub | None:
        i = self._index(key)
        return None if i is None else self._stub(i)

    def __iter__(self) -> Iterator[FinalStub]:
        return (self._stub(i) for i in range(len(self)))


_BLOCK_BITS = 10  # timesheet ids per block of the segment index: 1,024


def _index_blocks(blocks: dict[int, list[FinalSegment]], seg: FinalSegment) -> None:
    """Add ``seg`` to the blocks of its timesheet ids (segments are added in seq order)."""
    for block in sorted({i >> _BLOCK_BITS for i in seg._ts_ids}):
        blocks.setdefault(block, []).append(seg)


def _sort_key(key: LineKey) -> tuple[int, str]:
    if key[0] == TS:
        return (int(key[1]), "")
    return (0, key[1])


Use = dict[str, dict[str, tuple[Decimal, Decimal]]]  # contract -> month -> (hours, billed)


@dataclass
class Finals:
    """Every final item the flow knows of, and the consumption they hold."""

    segments: list[FinalSegment] = field(default_factory=list)
    gone: dict[int, set[LineKey]] = field(default_factory=dict)  # segment seq -> left keys
    limbo: set[str] = field(default_factory=set)  # reopened periods awaiting their rows
    use: Use = field(default_factory=dict)
    next_seq: int = 0

    def find(self, key: LineKey) -> FinalStub | None:
        """The stub of ``key`` if it is final or waits in a reopened period (newest first)."""
        for seg in reversed(self._candidates(key)):
            stub = seg.get(key)
            if stub is not None and key not in self.gone.get(seg.seq, ()):
                return stub
        return None

    def _candidates(self, key: LineKey) -> list[FinalSegment]:
        """The segments that may hold ``key``, oldest first: for a timesheet those holding an
        id of its block (ids are a sequence, so a block's items were final in few closes:
        without this every change searched every segment, a cost growing with history);
        for a milestone all of them."""
        if key[0] != TS:
            return self.segments
        try:
            block = int(key[1]) >> _BLOCK_BITS
        except ValueError:
            return []
        blocks: dict[int, list[FinalSegment]] | None = self.__dict__.get("_blocks")
        if blocks is None:  # after a restore, or a segment left
            blocks = self.__dict__["_blocks"] = {}
            for seg in self.segments:
                _index_blocks(blocks, seg)
        return blocks.get(block, [])

    def __getstate__(self) -> dict[str, object]:
        state = dict(self.__dict__)
        state.pop("_blocks", None)  # derived: rebuilt on the first find after a restore
        return state

    def is_final(self, stub: FinalStub) -> bool:
        return stub.final_period not in self.limbo

    def add(self, period: str, stubs: list[FinalStub]) -> FinalSegment:
        seg = FinalSegment(self.next_seq, period, stubs)
        self.next_seq += 1
        self.segments.append(seg)
        blocks = self.__dict__.get("_blocks")
        if blocks is not None:
            _index_blocks(blocks, seg)
        for s in stubs:
            self._count(s, +1)
        return seg

    def release(self, stub: FinalStub) -> None:
        """``stub``'s item leaves its segment (it is open again): its consumption is freed."""
        for seg in reversed(self._candidates(stub.key)):
            if seg.period == stub.final_period and seg.get(stub.key) is not None:
                gone = self.gone.setdefault(seg.seq, set())
                if stub.key in gone:
                    continue
                gone.add(stub.key)
                self._count(stub, -1)
                if len(gone) == len(seg):  # nothing left in it
                    self.segments.remove(seg)
                    del self.gone[seg.seq]
                    self.__dict__.pop("_blocks", None)  # rebuilt at the next find
                return
        raise KeyError(stub.key)

    def used(self, contract_id: str, month: str | None) -> tuple[Decimal, Decimal]:
        """(covered hours, billed amount) held by final items of a contract: in one month,
        or (``month`` None) over the whole contract."""
        months = self.use.get(contract_id)
        if not months:
            return ZERO, ZERO
        if month is not None:
            return months.get(month, (ZERO, ZERO))
        return (
            sum((h for h, _ in months.values()), ZERO),
            sum((b for _, b in months.values()), ZERO),
        )

    def contracts(self) -> set[str]:
        return set(self.use)

    def stubs_of(self, period: str) -> list[FinalStub]:
        """The items made final by the close of ``period`` that are still in their segment."""
        out: list[FinalStub] = []
        for seg in self.segments:
            if seg.period == period:
                gone = self.gone.get(seg.seq, set())
                out.extend(s for s in seg if s.key not in gone)
        return out

    def waiting(self) -> int:
        """Items of reopened periods still waiting for their rows (the re-snapshot)."""
        return sum(len(self.stubs_of(p)) for p in self.limbo)

    def __len__(self) -> int:
        return sum(len(s) - len(self.gone.get(s.seq, ())) for s in self.segments)

    def _count(self, stub: FinalStub, sign: int) -> None:
        if stub.contract_id is None or stub.month is None:
            return
        months = self.use.setdefault(stub.contract_id, {})
        hours, billed = months.get(stub.month, (ZERO, ZERO))
        hours += sign * stub.covered
        billed += sign * stub.billed
        if hours == 0 and billed == 0:
            months.pop(stub.month, None)
            if not months:
                del self.use[stub.contract_id]
        else:
            months[stub.month] = (hours, billed)
