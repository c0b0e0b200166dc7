"""The billing step driven directly (no Bytewax): a decoded stream with closes and source
transactions, a step for it, and feeding it (shared by the snapshot and journal tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from billsync.change import Change, TxMarker
from dataflows.billing.mappings import load_mappings
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.emissions import Emission, Progress
from dataflows.logic import RESYNC, BillingLogic
from dataflows.ordering import orderer_factory
from ops.bench.core import encode_stream

Item = Change | TxMarker


def decoded_stream(events: int, seed: int, month_events: int) -> list[Item]:
    """The bench's event stream (closes, transaction metadata), decoded, in order."""
    encoder, records = encode_stream(events, seed=seed, month_events=month_events,
                                     closes=True, transactions=True)  # fmt: skip
    dec = ChangeDecoder(encoder.schemas)
    items = [dec.decode(r.topic, 0, i, r.key, r.value) for i, r in enumerate(records)]
    return [i for i in items if isinstance(i, (Change, TxMarker))]


def billing_step(
    items: list[Item], resume: bytes | None, segments: Path | None, **kw: Any
) -> BillingLogic:
    """The billing step for ``items``' topics, fresh or resumed from ``resume``."""
    topics = sorted({i.topic for i in items})
    return BillingLogic(load_mappings(), resume, segments, orderer_factory(topics), **kw)


def feed(logic: BillingLogic, items: list[Item]) -> list[Any]:
    """Everything the step emits for ``items``."""
    out: list[Any] = []
    for item in items:
        emitted, _ = logic.on_item(item)
        out.extend(emitted)
    return out


def check_started(logic: BillingLogic, started: list[Any]) -> None:
    """What a resumed step sends first: the ``resumed`` marker with its snapshot's offsets,
    then the resync unit — every open line's and milestone's current target, then a
    ``Progress(resync=True)`` (sinks/erp/replay.py)."""
    marker, *resync, end = started
    assert isinstance(marker, Progress) and marker.resumed and not marker.resync
    assert isinstance(end, Progress) and end.resync and end.covers == ()
    current = logic.engine.current()
    assert [e.update for e in resync] == [*current.lines, *current.schedule]
    assert all(isinstance(e, Emission) and e.source_position == RESYNC for e in resync)
