"""``billsync bench core``: decode + billing + an in-memory sink against the decode ceiling.

Three passes over the same framed bytes, in one process, one after the other:

1. ``decode``: the typed edge alone (:class:`~dataflows.cdc.decoder.ChangeDecoder` over a
   dict-backed schema source) — the ceiling;
2. ``decode+billing``: the edge, the engine (:class:`~dataflows.billing.engine.BillingEngine`)
   and an in-memory sink holding each line's latest target (what ``billing_line_state`` holds),
   fed the same emissions the flow's sink gets (:func:`dataflows.logic.emissions`);
3. ``bytewax flow``: the production flow (:func:`dataflows.flow.build_flow`) on one worker,
   a ``TestingSource`` of ``KafkaSourceMessage`` and a counting sink in place of the ERP
   (the ERP write is measured by ``bench e2e``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import TestingSource, run_main

from dataflows.billing.engine import BillingEngine
from dataflows.billing.mappings import load_mappings
from dataflows.billing.target import LineKey, LineTarget
from dataflows.cdc.change import Change
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.flow import build_flow
from dataflows.logic import emissions
from ops.bench.debezium import Encoder, Framed
from ops.bench.world import change_stream
from sinks.erp.sink import SinkItem
from sinks.erp.writer import Emission

Msg = KafkaSourceMessage[bytes | None, bytes | None]


@dataclass(frozen=True)
class Pass:
    name: str
    events: int
    seconds: float
    outputs: int  # changes decoded, or emissions delivered to the sink

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


class MemorySink:
    """The latest target per line and the schedule per milestone: the ERP's live view, in RAM."""

    def __init__(self) -> None:
        self.lines: dict[LineKey, LineTarget | None] = {}
        self.emissions = 0

    def write(self, batch: list[Emission]) -> None:
        self.emissions += len(batch)
        for em in batch:
            update = em.update
            key = getattr(update, "key", None)
            if key is not None:
                self.lines[key] = getattr(update, "new", None)


class _Counter(StatelessSinkPartition[Any]):
    def __init__(self, box: list[int]) -> None:
        self._box = box

    def write_batch(self, items: list[Any]) -> None:
        self._box[0] += len(items)


class CountingSink(DynamicSink[Any]):
    """Counts what reaches the ERP step of the flow (stands in for the ERP database)."""

    def __init__(self) -> None:
        self.box = [0]

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Counter:
        return _Counter(self.box)


def encode_stream(n: int, seed: int = 7) -> tuple[Encoder, list[Framed]]:
    encoder = Encoder()
    return encoder, [encoder.change(op, b, a) for op, b, a in change_stream(n, seed=seed)]


def _decode_only(encoder: Encoder, records: list[Framed]) -> Pass:
    dec = ChangeDecoder(encoder.schemas)
    decode = dec.decode
    began = time.perf_counter()
    out = 0
    for i, r in enumerate(records):
        decode(r.topic, 0, i, r.key, r.value)
        out += 1
    return Pass("decode (ceiling)", len(records), time.perf_counter() - began, out)


def _decode_and_bill(encoder: Encoder, records: list[Framed]) -> tuple[Pass, BillingEngine]:
    dec = ChangeDecoder(encoder.schemas)
    engine = BillingEngine(load_mappings())
    sink = MemorySink()
    decode = dec.decode
    apply = engine.apply
    began = time.perf_counter()
    for i, r in enumerate(records):
        change = decode(r.topic, 0, i, r.key, r.value)
        if isinstance(change, Change):
            sink.write(emissions(apply(change), str(change.position), change.source_ts))
    seconds = time.perf_counter() - began
    return Pass("decode+billing+memory sink", len(records), seconds, sink.emissions), engine


def _flow(encoder: Encoder, records: list[Framed]) -> Pass:
    offsets: dict[str, int] = {}
    msgs: list[Msg] = []
    for r in records:
        off = offsets.get(r.topic, 0)
        offsets[r.topic] = off + 1
        msgs.append(KafkaSourceMessage(key=r.key, value=r.value, topic=r.topic, partition=0,
                                       offset=off))  # fmt: skip
    sink = CountingSink()
    erp: Any = sink  # the flow's ERP step takes any Sink of (key, SinkItem)
    flow = build_flow(
        TestingSource(msgs, batch_size=1000),
        decoder=lambda: ChangeDecoder(encoder.schemas),
        mappings=load_mappings(),
        erp_sink=erp,
    )
    began = time.perf_counter()
    run_main(flow)  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated
    seconds = time.perf_counter() - began
    return Pass("bytewax flow, 1 worker", len(records), seconds, sink.box[0])


def run_core(
    n: int, *, seed: int = 7, flow: bool = True, say: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Generate ``n`` framed events, run the passes, return figures (events/s and ratios)."""
    began = time.perf_counter()
    encoder, records = encode_stream(n, seed)
    gen_s = time.perf_counter() - began
    say(f"encoded {len(records)} events ({sum(len(r.value) for r in records)} bytes) "
        f"in {gen_s:.1f}s")  # fmt: skip
    ceiling = _decode_only(encoder, records)
    say(f"{ceiling.name}: {ceiling.events_per_s:,.0f} events/s")
    billed, engine = _decode_and_bill(encoder, records)
    say(f"{billed.name}: {billed.events_per_s:,.0f} events/s")
    passes = [ceiling, billed]
    if flow:
        f = _flow(encoder, records)
        say(f"{f.name}: {f.events_per_s:,.0f} events/s")
        passes.append(f)
    tables: dict[str, int] = {}
    for r in records:
        tables[r.topic] = tables.get(r.topic, 0) + 1
    return {
        "events": len(records),
        "value_bytes": sum(len(r.value) for r in records),
        "events_by_topic": dict(sorted(tables.items())),
        "open_lines": len(engine.lines),
        "passes": [
            {
                "pass": p.name,
                "events": p.events,
                "seconds": round(p.seconds, 4),
                "events_per_s": round(p.events_per_s, 1),
                "ratio_to_decode": round(p.events_per_s / ceiling.events_per_s, 3),
                "outputs": p.outputs,
            }
            for p in passes
        ],
        "targets": {"events_per_s_per_worker": 50_000, "ratio_to_decode": 0.5},
    }


__all__ = ["MemorySink", "SinkItem", "run_core"]
