"""Engine snapshots whose size does not grow with final items (SPEC 2b, bounded state).

Bytewax pickles the billing step's state in every epoch in which it changed. The stubs of
final items (:class:`~dataflows.billing.finals.FinalSegment`) are immutable once a close has
built them, so writing them in every epoch would be wasted work that grows with history.
With a ``segment_dir`` this pickler writes each segment once, as its own file named by
the SHA-256 of its bytes (written to a temporary name, fsynced, renamed), and the
snapshot refers to it by that name (a reduction to :func:`_segment`; snapshots of earlier
versions used pickle's ``persistent_id`` and still load). Without a directory (tests,
``run --from-file`` without recovery) segments are pickled inline.

Speed: the snapshot is taken in the flow's thread at every epoch end, so its time is a
pause of the flow. The pickler runs in C with a dispatch table, never a Python hook per
object: a ``persistent_id`` method is called for every object pickled (millions at 100k
lines), and the ``__getstate__`` that ``dataclass(slots=True)`` generates calls
``dataclasses.fields()`` per object. The frozen slots dataclasses of the state (rows, line
targets, candidates, changes and positions held by the ordering stage, mappings) are
reduced to their class and field values instead, rebuilt by their constructor
(:data:`FAST_TYPES`); about half of the pickling time at 50k lines
(BENCHMARKS.md, "Snapshot pickling").

The segment files live beside the Bytewax recovery store and must be kept (and backed up)
with it: a snapshot that names a missing segment cannot be resumed
(:class:`~billsync.errors.StackError` names the file). Files of segments that no snapshot
refers to any more are left in place (a few bytes per final item of a close); the backup
interval of the recovery store decides which snapshots may still need them.
"""

from __future__ import annotations

import copyreg
import dataclasses
import hashlib
import io
import os
import pickle
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from operator import attrgetter
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from billsync import change, model
from billsync.errors import StackError
from dataflows.billing import mappings, rules, target
from dataflows.billing.finals import FinalSegment

_TAG = "billsync-final-segment"  # persistent ids of earlier snapshots
# the store segment references are loaded from, while loads() runs
_LOADING: ContextVar[SegmentStore | None] = ContextVar("billsync_segment_store", default=None)
Reduction = tuple[Callable[..., Any], tuple[Any, ...]]


def _plain_dataclasses(modules: Iterable[ModuleType]) -> tuple[type, ...]:
    """The frozen ``slots=True`` dataclasses defined in ``modules`` that pickle with the
    generated ``__getstate__`` (every field an ``__init__`` parameter, in field order)."""
    found = []
    for module in modules:
        for obj in vars(module).values():
            if (
                isinstance(obj, type)
                and obj.__module__ == module.__name__
                and dataclasses.is_dataclass(obj)
                and "__slots__" in vars(obj)
                and obj.__dataclass_params__.frozen  # type: ignore[attr-defined]  # set by @dataclass
                and "_dataclass_getstate" in getattr(obj.__getstate__, "__qualname__", "")
                and all(f.init for f in dataclasses.fields(obj))
            ):
                found.append(obj)
    return tuple(found)


FAST_TYPES = _plain_dataclasses((model, change, target, rules, mappings))


def _by_constructor(cls: type) -> Callable[[Any], Reduction]:
    names = [f.name for f in dataclasses.fields(cls)]
    get = attrgetter(*names)
    if len(names) == 1:
        return lambda obj: (cls, (get(obj),))
    return lambda obj: (cls, get(obj))


# the dispatch table of every snapshot (copyreg's entries, then the state's dataclasses)
_FAST_TABLE: dict[Any, Callable[[Any], Any]] = {
    **copyreg.dispatch_table,
    **{cls: _by_constructor(cls) for cls in FAST_TYPES},
}


def pickle_by_constructor(*extra: type) -> None:
    """Pickle the state's dataclasses (and ``extra`` ones) by their constructor everywhere
    in this process, as snapshots do (``copyreg``): what Bytewax pickles between processes
    (the sharded step's units and answers) then costs a C-level attribute fetch per object
    instead of the dataclass's Python ``__getstate__`` (about twice as fast for the sharded
    step on 2 processes, BENCHMARKS.md). Loading is unchanged: a pickle names its reducer."""
    for cls in (*FAST_TYPES, *extra):
        copyreg.pickle(cls, _by_constructor(cls))


def _segment(name: str) -> FinalSegment:
    """A final segment named by a snapshot: loaded from the store of the running loads()."""
    store = _LOADING.get()
    if store is None:
        raise StackError("recovery", "the snapshot names final segment files: no segment_dir")
    return store.load(name)


class SegmentStore:
    """Writes and reads final segments as content-addressed files in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._names: dict[int, tuple[FinalSegment, str]] = {}  # id(segment) -> (it, name)

    def name_of(self, segment: FinalSegment) -> str:
        known = self._names.get(id(segment))
        if known is not None and known[0] is segment:
            return known[1]
        blob = pickle.dumps(segment, protocol=pickle.HIGHEST_PROTOCOL)
        name = self.put(f"final-{segment.period}", blob)
        self._names[id(segment)] = (segment, name)
        return name

    def put(self, prefix: str, blob: bytes) -> str:
        """Write ``blob`` once as ``<prefix>-<sha256>.seg`` (temporary name, fsync, rename);
        its file name."""
        name = f"{prefix}-{hashlib.sha256(blob).hexdigest()[:32]}.seg"
        if not (self.directory / name).exists():
            self.write(name, lambda fh: fh.write(blob))
        return name

    def write(self, name: str, fill: Callable[[BinaryIO], object]) -> None:
        """Write file ``name`` with what ``fill`` writes to it, whole or not at all: a
        temporary name, fsync, rename."""
        path = self.directory / name
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def read(self, name: str) -> bytes:
        """The bytes of a file a snapshot names; a clear error when it is missing."""
        path = self.directory / name
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise StackError(
                "recovery",
                f"{path} named by the recovery snapshot is missing: restore it from the "
                "backup of the recovery store (it is part of that store)",
            ) from None

    def load(self, name: str) -> FinalSegment:
        path = self.directory / name
        segment = _Unpickler(io.BytesIO(self.read(name)), None).load()  # our own file, see put()
        if not isinstance(segment, FinalSegment):
            raise StackError("recovery", f"{path} does not hold a final segment")
        self._names[id(segment)] = (segment, name)
        return segment


# modules whose classes snapshots of earlier versions name (moved to the base package in the
# layout of 2026-12-01, ARCHITECTURE.md §7): a recovery store written before still resumes
MOVED_MODULES = {
    "dataflows.model": "billsync.model",  # old module name
    "dataflows.cdc.change": "billsync.change",  # old module name
    "dataflows.errors": "billsync.errors",  # old module name
    "sinks.erp.writer": "dataflows.emissions",  # Emission, Progress; old module name
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, store: SegmentStore | None) -> None:
        super().__init__(file)
        self._store = store

    def find_class(self, module: str, name: str) -> Any:
        moved = MOVED_MODULES.get(module)
        if moved is not None and (module != "sinks.erp.writer" or name in ("Emission", "Progress")):
            module = moved
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> FinalSegment:  # snapshots of earlier versions
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == _TAG):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        if self._store is None:
            raise StackError("recovery", "the snapshot names final segment files: no segment_dir")
        return self._store.load(pid[1])


def dump(state: object, store: SegmentStore | None, file: BinaryIO) -> None:
    """Pickle ``state`` into ``file``; final segments by reference when there is a ``store``."""
    table = _FAST_TABLE
    if store is not None:
        table = {**_FAST_TABLE, FinalSegment: lambda seg: (_segment, (store.name_of(seg),))}
    pickler = pickle.Pickler(file, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = table
    pickler.dump(state)


def dumps(state: object, store: SegmentStore | None) -> bytes:
    """Pickle ``state`` (:func:`dump`) into bytes."""
    buf = io.BytesIO()
    dump(state, store, buf)
    return buf.getvalue()


def loads(blob: bytes, store: SegmentStore | None) -> Any:
    """Unpickle what :func:`dumps` wrote (our own snapshot bytes)."""
    token = _LOADING.set(store)
    try:
        return _Unpickler(io.BytesIO(blob), store).load()
    finally:
        _LOADING.reset(token)
