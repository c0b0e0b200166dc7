"""The billing step's snapshot (dataflows/snapshots.py): what is pickled is what resumes.

The snapshot is pickled with a dispatch table that reduces the state's frozen dataclasses
to their constructor and refers to final segments by file name. These tests cut a stream
with closes and transaction metadata in the middle (open transactions held by the ordering
stage, final segments, candidates, allocation books), snapshot, resume, and check that the
resumed step emits exactly what the uninterrupted one emits for the rest of the stream — also
from a snapshot written the way earlier versions wrote them (``persistent_id``, the
dataclass-generated ``__getstate__``), which must still load.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import pytest

from billsync.change import Change, SourcePosition, TxMarker
from billsync.model import ROW_TYPES
from dataflows.billing.finals import FinalSegment
from dataflows.billing.rules import Candidate
from dataflows.billing.target import LineTarget
from dataflows.snapshots import _TAG, FAST_TYPES, SegmentStore
from tests.unit.flow.steps import Item, billing_step, check_started, decoded_stream, feed


def _stream() -> list[Item]:
    return decoded_stream(6000, seed=3, month_events=500)


def _old_format(state: object, store: SegmentStore) -> bytes:
    """A snapshot as versions before the dispatch table wrote them."""

    class Old(pickle.Pickler):
        def persistent_id(self, obj: Any) -> tuple[str, str] | None:
            return (_TAG, store.name_of(obj)) if isinstance(obj, FinalSegment) else None

    buf = io.BytesIO()
    Old(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(state)
    return buf.getvalue()


@pytest.mark.parametrize("how", ["segment files", "inline", "earlier version's format"])
def test_a_resumed_step_emits_what_the_uninterrupted_one_emits(tmp_path: Path, how: str) -> None:
    items = _stream()
    cut = len(items) // 2
    segments = None if how == "inline" else tmp_path / "segments"
    first = billing_step(items, None, segments)
    feed(first, items[:cut])
    while not any(o.waiting() for o in first._orderers.values()):  # cut inside a transaction
        feed(first, [items[cut]])
        cut += 1
    assert first.engine.finals and first.engine.lines  # closes happened, lines are open
    if how == "earlier version's format":
        assert segments is not None
        state = (first.engine.snapshot(), dict(first._applied), first._orderers)
        blob = _old_format(state, SegmentStore(segments))
    else:
        blob = first.snapshot()
    resumed = billing_step(items, blob, segments)
    assert resumed.engine.lines == first.engine.lines
    assert resumed.engine.state.candidates == first.engine.state.candidates
    assert resumed.engine.state.rows == first.engine.state.rows
    assert resumed.engine.state.positions == first.engine.state.positions
    assert len(resumed.engine.finals) == len(first.engine.finals)
    # the rest of the stream: the same emissions (after the resumed Progress), the same end
    started, _ = resumed.on_notify()  # what it sends first: the Progress its snapshot held
    check_started(resumed, list(started))
    assert feed(resumed, items[cut:]) == feed(first, items[cut:])
    assert resumed.engine.lines == first.engine.lines


def test_the_state_types_are_pickled_by_constructor() -> None:
    # a type missing here would fall back to dataclasses' per-object fields() (slow, not wrong)
    for cls in (LineTarget, Candidate, Change, TxMarker, SourcePosition, *ROW_TYPES.values()):
        assert cls in FAST_TYPES, cls


def test_a_snapshot_naming_the_modules_before_the_layout_of_2026_12_01_loads() -> None:
    """The value types moved to the base package; old module name: ``dataflows.model``
    (now ``billsync.model``) and ``dataflows.cdc.change`` (old module name): a recovery store
    written before the move names the old modules, and a resume must still load it."""
    from billsync.model import Project
    from dataflows.snapshots import loads

    state = {"p": Project(project_id="P1", status="active")}
    blob = pickle.dumps(state, protocol=0)  # GLOBAL opcodes: module names as text
    assert b"billsync.model" in blob
    old = blob.replace(b"billsync.model", b"dataflows.model")  # old module name
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)  # noqa: S301  # our own bytes
    assert loads(old, None) == state
