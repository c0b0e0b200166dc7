"""``billsync bench core``: decode + billing + an in-memory sink against the decode ceiling.

Three passes over the same framed bytes, in one process, one after the other:

1. ``decode``: the typed edge alone (:class:`~dataflows.cdc.decoder.ChangeDecoder` over a
   dict-backed schema source) — the ceiling;
2. ``decode+billing``: the edge, the engine (:class:`~dataflows.billing.engine.BillingEngine`)
   and an in-memory sink holding each line's latest target (what ``billing_line_state`` holds),
   fed the same emissions the flow's sink gets (:func:`dataflows.logic.emissions`);
3. ``bytewax flow``: the production flow (:func:`dataflows.flow.build_flow`) on one worker,
   a ``TestingSource`` of ``KafkaSourceMessage`` and a counting sink in place of the ERP
   (the ERP write is measured by ``bench e2e``);
4. with ``workers``: the same flow once per entry on ``processes`` x that many workers, its
   input split into one partition per source database (:mod:`ops.bench.cluster`), so that
   reading and decoding spread over the workers as Kafka partitions do.

The stream (:func:`~ops.bench.world.change_stream`) runs a simulated month every
:data:`MONTH_EVENTS` events and, unless ``closes`` is off, closes each month two months
after it (``erp.public.accounting_periods`` records, encoded like the other tables), so the
open state stays bounded. :func:`run_sizes` runs several sizes one after the other and
compares the per-event cost (µs/event) of the largest with that of the smallest: with
closes, a longer history should not make an event dearer. The decode and billing passes
also time each window of ``window`` events, so the largest run shows, window by window,
whether late events cost more than early ones (the smallest run and the first window hold
the reference tables' snapshot, a cheaper mix).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSource, run_main

from billsync.change import Change, TxMarker
from dataflows.billing.engine import BillingEngine
from dataflows.billing.mappings import load_mappings
from dataflows.billing.sharded import ShardedEngine
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.emissions import Emission, SinkItem
from dataflows.flow import build_flow
from dataflows.logic import BillingLogic
from dataflows.ordering import orderer_factory
from ops.bench.cluster import CountingSink, messages, run_in_process, run_processes
from ops.bench.debezium import Encoder, Framed, in_transactions
from ops.bench.world import MONTH_EVENTS, change_stream
from ops.run.gctune import tune_gc

Msg = KafkaSourceMessage[bytes | None, bytes | None]
BILLING = "decode+billing+memory sink"
GOAL_RATIO = 1.25  # per-event cost at 200k events within 1.25x of that at 20k (issue 9)
WINDOW = 20_000  # events per window of the per-window costs


@dataclass(frozen=True)
class Pass:
    name: str
    events: int
    seconds: float
    outputs: int  # changes decoded, or emissions delivered to the sink
    digest: str | None = None  # of the lines' final targets (billing and flow passes)
    windows: tuple[float, ...] = ()  # µs/event of each window of WINDOW events, in order

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else float("inf")


def encode_stream(
    n: int,
    seed: int = 7,
    *,
    month_events: int | None = None,
    closes: bool = False,
    transactions: bool = False,
) -> tuple[Encoder, list[Framed]]:
    """``n`` changes framed as Debezium records; with ``transactions``, as a connector with
    transaction metadata writes them (1-5 changes per source transaction, BEGIN/END records
    on ``<prefix>.transaction``: more records than changes)."""
    encoder = Encoder(transactions=transactions)
    stream = change_stream(n, seed=seed, month_events=month_events, closes=closes)
    if transactions:
        rnd = random.Random(seed)  # noqa: S311  # synthetic data, not security
        return encoder, in_transactions(encoder, stream, rnd)
    return encoder, [encoder.change(op, b, a) for op, b, a in stream]


class _Windows:
    """The clock at every ``size`` events of a pass: µs/event per window of the stream, to
    tell a cost that grows with history (later windows dearer) from a change of the events'
    mix (the first window holds the initial snapshot of the reference tables)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.marks = [time.perf_counter()]

    def tick(self, i: int) -> None:
        if i % self.size == 0 and i:
            self.marks.append(time.perf_counter())

    def per_event(self, n: int) -> tuple[float, ...]:
        """µs/event of each window of a pass over ``n`` events (the last may be shorter)."""
        marks = [*self.marks, time.perf_counter()]
        return tuple(
            round((b - a) * 1e6 / min(self.size, n - k * self.size), 2)
            for k, (a, b) in enumerate(pairwise(marks))
        )


def _decode_only(encoder: Encoder, records: list[Framed], window: int) -> Pass:
    dec = ChangeDecoder(encoder.schemas)
    decode = dec.decode
    clock = _Windows(window)
    tick = clock.tick
    began = time.perf_counter()
    out = 0
    for i, r in enumerate(records):
        tick(i)
        decode(r.topic, 0, i, r.key, r.value)
        out += 1
    seconds = time.perf_counter() - began
    return Pass("decode (ceiling)", len(records), seconds, out, None, clock.per_event(len(records)))


def _decode_and_bill(
    encoder: Encoder, records: list[Framed], window: int
) -> tuple[Pass, BillingEngine]:
    """The flow's steps without Bytewax: decode, the ordering stage, the billing logic."""
    dec = ChangeDecoder(encoder.schemas)
    new_orderer = orderer_factory(sorted({r.topic for r in records}))
    logic = BillingLogic(load_mappings(), None, new_orderer=new_orderer)
    sink = CountingSink()
    decode = dec.decode
    clock = _Windows(window)
    tick = clock.tick
    began = time.perf_counter()
    for i, r in enumerate(records):
        tick(i)
        item = decode(r.topic, 0, i, r.key, r.value)
        if not isinstance(item, (Change, TxMarker)):
            continue
        out, _ = logic.on_item(item)
        for o in out:
            if isinstance(o, Emission):
                sink.take(o)
    seconds = time.perf_counter() - began
    windows = clock.per_event(len(records))
    passed = Pass(BILLING, len(records), seconds, sink.emissions, sink.digest(), windows)
    return passed, logic.engine


def _flow(encoder: Encoder, records: list[Framed]) -> Pass:
    msgs = messages(records)
    sink = CountingSink()
    erp: Any = sink  # the flow's ERP step takes any Sink of (key, SinkItem)
    flow = build_flow(
        TestingSource(msgs, batch_size=1000),
        decoder=lambda: ChangeDecoder(encoder.schemas),
        mappings=load_mappings(),
        erp_sink=erp,
        topics=sorted({r.topic for r in records}),
    )
    began = time.perf_counter()
    run_main(flow)  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated
    seconds = time.perf_counter() - began
    return Pass("bytewax flow, 1 worker", len(records), seconds, sink.emissions, sink.digest())


def _cluster(
    encoder: Encoder, records: list[Framed], processes: int, workers: int, shards: int = 1
) -> Pass:
    """The flow with one partition per source, on ``processes`` x ``workers`` workers, the
    billing step in ``shards`` shards."""
    if processes == 1:
        run = run_in_process(encoder.schemas, records, workers, shards=shards)
    else:
        run = run_processes(encoder.schemas, records, processes, workers, shards=shards)
    name = f"flow {processes}x{workers}, partition per source"
    if shards > 1:
        name += f", {shards} shards"
    return Pass(name, len(records), run.seconds, run.emissions, run.digest)


def _engines(encoder: Encoder, records: list[Framed], counts: tuple[int, ...]) -> list[Pass]:
    """The engine alone on the decoded changes (one unit each): as one key, and as each
    count of shards (:class:`~dataflows.billing.sharded.ShardedEngine`, one after the other
    in this thread), timed per shard — the slowest shard is what a worker of its own would
    spend; the part every shard pays (each keeps every row) bounds what more shards save."""
    dec = ChangeDecoder(encoder.schemas)
    changes = [
        c for i, r in enumerate(records)
        if isinstance(c := dec.decode(r.topic, 0, i, r.key, r.value), Change)
    ]  # fmt: skip
    mappings = load_mappings()
    one = BillingEngine(mappings)
    began = time.perf_counter()
    for c in changes:
        one.apply_unit((c,))
    out = [Pass("engine only, one key", len(records), time.perf_counter() - began, len(one.lines))]
    for n in counts:
        many = ShardedEngine(mappings, n)
        for c in changes:
            many.apply_unit((c,))
        slowest = max(many.spent)
        out.append(
            Pass(f"engine only, slowest of {n} shards", len(records), slowest, len(many.lines))
        )
    return out


@dataclass(frozen=True)
class Options:
    """How `bench core` builds its stream and which passes it runs."""

    seed: int = 7
    flow: bool = True  # also the Bytewax flow pass
    month_events: int | None = MONTH_EVENTS  # events per simulated month (None: 9 s an event)
    closes: bool = True  # close each month two months after it
    transactions: bool = False  # input with Debezium transaction metadata
    # flow passes with one partition per source: workers per process, for each entry
    workers: tuple[int, ...] = ()
    processes: int = 1  # processes of those passes
    # shard counts: the --workers passes once per count, and the engine alone per count
    shards: tuple[int, ...] = ()
    window: int = WINDOW  # events per window of the decode and billing passes' window costs


def run_core(
    n: int, opts: Options = Options(), say: Callable[[str], None] = lambda _m: None
) -> dict[str, Any]:
    """Generate ``n`` framed events, run the passes, return figures (events/s and ratios).
    The process collects garbage as the flow's do (:mod:`ops.run.gctune`)."""
    tune_gc()
    began = time.perf_counter()
    encoder, records = encode_stream(
        n, opts.seed, month_events=opts.month_events, closes=opts.closes,
        transactions=opts.transactions,
    )  # fmt: skip
    gen_s = time.perf_counter() - began
    say(f"encoded {len(records)} events ({sum(len(r.value) for r in records)} bytes) "
        f"in {gen_s:.1f}s")  # fmt: skip
    ceiling = _decode_only(encoder, records, opts.window)
    say(f"{ceiling.name}: {ceiling.events_per_s:,.0f} events/s")
    billed, engine = _decode_and_bill(encoder, records, opts.window)
    say(f"{billed.name}: {billed.events_per_s:,.0f} events/s")
    passes = [ceiling, billed]
    if opts.flow:
        f = _flow(encoder, records)
        say(f"{f.name}: {f.events_per_s:,.0f} events/s")
        passes.append(f)
    for w in opts.workers:
        for n in opts.shards or (1,):
            f = _cluster(encoder, records, opts.processes, w, n)
            say(f"{f.name}: {f.events_per_s:,.0f} events/s")
            passes.append(f)
    if opts.shards:
        for f in _engines(encoder, records, tuple(n for n in opts.shards if n > 1)):
            say(f"{f.name}: {f.events_per_s:,.0f} events/s")
            passes.append(f)
    tables: dict[str, int] = {}
    for r in records:
        tables[r.topic] = tables.get(r.topic, 0) + 1
    return {
        "events": len(records),
        "month_events": opts.month_events,
        "closes": opts.closes,
        "changes": n,
        "transactions": opts.transactions,
        "value_bytes": sum(len(r.value) for r in records),
        "events_by_topic": dict(sorted(tables.items())),
        "closed_through": engine.closed_through,
        "open_lines": len(engine.lines),
        "final_lines": len(engine.finals),
        "passes": [
            {
                "pass": p.name,
                "events": p.events,
                "seconds": round(p.seconds, 4),
                "events_per_s": round(p.events_per_s, 1),
                "us_per_event": round(p.seconds * 1e6 / max(p.events, 1), 2),
                "ratio_to_decode": round(p.events_per_s / ceiling.events_per_s, 3),
                "outputs": p.outputs,
                "lines_digest": p.digest,
                "window_us": list(p.windows),
            }
            for p in passes
        ],
        "window": opts.window,
        "targets": {"events_per_s_per_worker": 50_000, "ratio_to_decode": 0.5},
    }


def _billing_cost(run: dict[str, Any]) -> float:
    return float(next(p["us_per_event"] for p in run["passes"] if p["pass"] == BILLING))


def run_sizes(
    sizes: list[int],
    opts: Options = Options(),
    say: Callable[[str], None] = lambda _m: None,
    *,
    repeat: int = 1,
) -> dict[str, Any]:
    """:func:`run_core` at each size, one after the other in this process, and each pass's
    per-event cost at the largest size over that at the smallest (the growth of per-event
    cost with the stream's history: SPEC 2b wants it flat once months close).

    With ``repeat`` > 1 the sizes run round-robin that many times and each size keeps its
    run of the lowest decode+billing cost, so that load from elsewhere on the machine weighs
    on every size alike and a passing burst does not decide the ratio."""
    best: dict[int, dict[str, Any]] = {}
    for round_ in range(repeat):
        for n in sorted(set(sizes)):
            say(f"--- {n:,} events (round {round_ + 1} of {repeat})")
            run = run_core(n, opts, say)
            if n not in best or _billing_cost(run) < _billing_cost(best[n]):
                best[n] = run
    runs = [best[n] for n in sorted(best)]
    small, large = runs[0], runs[-1]
    cost = {p["pass"]: p["us_per_event"] for p in small["passes"]}
    growth = {
        p["pass"]: round(p["us_per_event"] / cost[p["pass"]], 3) if cost[p["pass"]] else None
        for p in large["passes"]
    }
    return {
        "sizes": [r["events"] for r in runs],
        "largest_windows": _steady(large),
        "closes": opts.closes,
        "month_events": opts.month_events,
        "repeat": repeat,
        "runs": runs,
        "cost_ratio": growth,  # us/event at the largest size / at the smallest, per pass
        "goal_ratio": GOAL_RATIO,
        "within_goal": (growth.get(BILLING) or float("inf")) <= GOAL_RATIO,
    }


def _steady(run: dict[str, Any]) -> dict[str, Any]:
    """The largest run's cost per window: decode, decode+billing, and their difference (the
    ordering stage and the engine). Whether an event costs more late in a long history shows
    as the last window against the second (the first holds the reference tables' snapshot,
    a different mix); the whole-run ratio of :func:`run_sizes` mixes both effects."""
    by_pass = {p["pass"]: p["window_us"] for p in run["passes"] if p["window_us"]}
    decode, billing = by_pass.get("decode (ceiling)", []), by_pass.get(BILLING, [])
    engine = [round(b - d, 2) for d, b in zip(decode, billing, strict=True)]
    ratio = round(engine[-1] / engine[1], 3) if len(engine) >= 3 and engine[1] else None
    return {
        "window": run["window"],
        "decode_us": decode,
        "billing_us": billing,
        "engine_us": engine,
        "engine_last_over_second": ratio,
    }


__all__ = ["Options", "SinkItem", "run_core", "run_sizes"]
