"""Engine snapshots whose size does not grow with final items (SPEC 2b, bounded state).

Bytewax pickles the billing step's state in every epoch in which it changed. The stubs of
final items (:class:`~dataflows.billing.finals.FinalSegment`) are immutable once a close has
built them, so writing them in every epoch would be wasted work that grows with history.
With a ``segment_dir`` this pickler writes each segment once, as its own file named by
the SHA-256 of its bytes (written to a temporary name, fsynced, renamed), and the
snapshot refers to it by that name (pickle's ``persistent_id``). Without a directory
(tests, ``run --from-file`` without recovery) segments are pickled inline.

The segment files live beside the Bytewax recovery store and must be kept (and backed up)
with it: a snapshot that names a missing segment cannot be resumed
(:class:`~dataflows.errors.StackError` names the file). Files of segments that no snapshot
refers to any more are left in place (a few bytes per final item of a close); the backup
interval of the recovery store decides which snapshots may still need them.
"""

from __future__ import annotations

import hashlib
import io
import os
import pickle
from pathlib import Path
from typing import Any

from dataflows.billing.finals import FinalSegment
from dataflows.errors import StackError

_TAG = "billsync-final-segment"


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
        name = f"final-{segment.period}-{hashlib.sha256(blob).hexdigest()[:32]}.seg"
        path = self.directory / name
        if not path.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            with open(tmp, "wb") as fh:
                fh.write(blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        self._names[id(segment)] = (segment, name)
        return name

    def load(self, name: str) -> FinalSegment:
        path = self.directory / name
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise StackError(
                "recovery",
                f"final segment {path} named by the recovery snapshot is missing: restore it "
                "from the backup of the recovery store (it is part of that store)",
            ) from None
        segment = pickle.loads(blob)  # noqa: S301  # our own file, written by name_of() above
        if not isinstance(segment, FinalSegment):
            raise StackError("recovery", f"{path} does not hold a final segment")
        self._names[id(segment)] = (segment, name)
        return segment


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO, store: SegmentStore) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self._store = store

    def persistent_id(self, obj: Any) -> tuple[str, str] | None:
        if isinstance(obj, FinalSegment):
            return (_TAG, self._store.name_of(obj))
        return None


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, store: SegmentStore | None) -> None:
        super().__init__(file)
        self._store = store

    def persistent_load(self, pid: Any) -> FinalSegment:
        if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == _TAG):
            raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
        if self._store is None:
            raise StackError("recovery", "the snapshot names final segment files: no segment_dir")
        return self._store.load(pid[1])


def dumps(state: object, store: SegmentStore | None) -> bytes:
    """Pickle ``state``; final segments by reference when there is a ``store``."""
    if store is None:
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    buf = io.BytesIO()
    _Pickler(buf, store).dump(state)
    return buf.getvalue()


def loads(blob: bytes, store: SegmentStore | None) -> Any:
    """Unpickle what :func:`dumps` wrote (our own snapshot bytes)."""
    return _Unpickler(io.BytesIO(blob), store).load()
