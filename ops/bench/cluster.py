"""The Bytewax flow pass of ``bench core`` on W workers in each of P processes.

The records are split by source database into the partitions of :class:`SourceSource` (as
Kafka topic-partitions are the partitions of Bytewax's ``KafkaSource``), so that the workers
share the reading and decoding the way they do in production. With one process the workers are
threads of this process (``cluster_main``); with several, this module is run once per
process (``python -m ops.bench.cluster``) over the records pickled into a file, and each
process reports the seconds of its own ``cluster_main`` (the cluster's start-up handshake
included, process start and loading the records not) and what reached its sink.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import pickle
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.dataflow import Dataflow
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import cluster_main, run_main

from dataflows.billing.mappings import load_mappings
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.cdc.schemas import SchemaSource
from dataflows.emissions import Emission
from dataflows.flow import build_flow
from ops.bench.debezium import Framed
from ops.run.gctune import tune_gc
from ops.run.ports import free_cluster_ports

Msg = KafkaSourceMessage[bytes | None, bytes | None]
BATCH = 1000  # records per batch of a partition (KafkaSource's default batch_size)
GATED = "erp"  # the source of the closes (accounting_periods): see Clock
_SLOT = 8  # bytes per partition in the clock file


class Clock:
    """How far each partition has read, in the stream's global order, shared by every worker
    thread and process of one run through a small file mapped into memory.

    The bench's stream compresses a month into a few thousand events and closes each month
    in it. Read as separate partitions, the ERP's few close records would all be read at
    once, ahead of the months they close, and the run would bill another workload. So the
    ERP partition hands out a close only once every other partition has read past the
    close's place in the stream (in production a close comes long after its month)."""

    def __init__(self, path: Path, parts: Sequence[str]) -> None:
        self._parts = list(parts)
        self._file = path.open("r+b")  # made by create() before any worker starts
        self._map = mmap.mmap(self._file.fileno(), _SLOT * len(parts))

    @staticmethod
    def create(path: Path, parts: int) -> Path:
        """A clock file at zero for ``parts`` partitions (before the workers start)."""
        path.write_bytes(b"\0" * _SLOT * parts)
        return path

    def set(self, part: str, at: int) -> None:
        i = self._parts.index(part) * _SLOT
        self._map[i : i + _SLOT] = at.to_bytes(_SLOT, "little")

    def least_but(self, part: str) -> int:
        """The lowest global position read so far by the partitions other than ``part``."""
        return min(
            int.from_bytes(self._map[i * _SLOT : (i + 1) * _SLOT], "little")
            for i, p in enumerate(self._parts)
            if p != part
        )


class _Part(StatefulSourcePartition[Msg, int]):
    """One source's records (its table and transaction topics) in their stream order."""

    def __init__(
        self,
        name: str,
        msgs: Sequence[tuple[int, Msg]],
        at: int,
        clock: Clock,
        gate: str | None = GATED,
    ) -> None:
        self._name = name
        self._msgs = msgs
        self._at = at
        self._clock = clock
        self._gated = name == gate

    def next_batch(self) -> list[Msg]:
        msgs, at = self._msgs, self._at
        if at >= len(msgs):
            raise StopIteration
        end = min(len(msgs), at + BATCH)
        if self._gated:
            limit = self._clock.least_but(self._name)
            while end > at and msgs[end - 1][0] >= limit:
                end -= 1
        batch = [m for _g, m in msgs[at:end]]
        # where it stands: its next record's place, or past everything (never holds back)
        self._at = end
        self._clock.set(self._name, msgs[end][0] if end < len(msgs) else 1 << 62)
        return batch

    def next_awake(self) -> datetime | None:
        # the ERP partition waits for the others: poll again in a millisecond, not in a spin
        if self._gated and self._at < len(self._msgs):
            return datetime.now(UTC) + timedelta(milliseconds=1)
        return None

    def snapshot(self) -> int:
        return self._at


class SourceSource(FixedPartitionedSource[Msg, int]):
    """One partition per source database (``psa``, ``crm``, ``erp``: a topic's first
    name), each in the stream's order, the ERP's closes gated by a :class:`Clock`, or not
    gated with ``gate=None`` (a caller that places its closes itself, e.g. by resuming a
    recovery store between phases; the clock cannot gate a resumed run: a partition read to
    its end in an earlier run never moves it again)."""

    def __init__(
        self,
        by_source: dict[str, list[tuple[int, Msg]]],
        clock_file: Path,
        gate: str | None = GATED,
    ) -> None:
        self._by_source = by_source
        self._clock_file = clock_file
        self._gate = gate

    def list_parts(self) -> list[str]:
        return sorted(self._by_source)

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _Part:
        clock = Clock(self._clock_file, self.list_parts())
        return _Part(for_part, self._by_source[for_part], resume_state or 0, clock, self._gate)


class _Counter(StatelessSinkPartition[Any]):
    def __init__(self, sink: CountingSink) -> None:
        self._sink = sink

    def write_batch(self, items: list[Any]) -> None:
        for _k, item in items:
            if isinstance(item, Emission):  # not Progress
                self._sink.take(item)


class CountingSink(DynamicSink[Any]):
    """Stands in for the ERP: counts the emissions that reach the flow's ERP step and keeps
    each line's latest target (what ``billing_line_state`` would hold)."""

    def __init__(self) -> None:
        self.emissions = 0
        self.lines: dict[Any, Any] = {}

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _Counter:
        return _Counter(self)

    def take(self, emission: Emission) -> None:
        """One emission of the billing step (the in-process bench pass calls this directly)."""
        self.emissions += 1
        key = getattr(emission.update, "key", None)
        if key is not None:
            self.lines[key] = getattr(emission.update, "new", None)

    def digest(self) -> str:
        return lines_digest(self.lines)


def lines_digest(lines: dict[Any, Any]) -> str:
    """A fingerprint of the lines' latest targets (a line without one left out): runs that
    end in the same line states have the same digest."""
    text = "\n".join(f"{k!r}={v!r}" for k, v in sorted(lines.items()) if v is not None)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def source_of(topic: str) -> str:
    """The source database of a Debezium topic: its first name (``psa``, ``crm``, ``erp``)."""
    return topic.split(".")[0]


def messages(records: Sequence[Framed]) -> list[Msg]:
    """The records as Kafka messages, in stream order, each of partition 0 of its topic with
    offsets from 0."""
    offsets: dict[str, int] = {}
    out: list[Msg] = []
    for r in records:
        off = offsets.get(r.topic, 0)
        offsets[r.topic] = off + 1
        out.append(KafkaSourceMessage(key=r.key, value=r.value, topic=r.topic, partition=0,
                                      offset=off))  # fmt: skip
    return out


def by_source(records: Sequence[Framed]) -> dict[str, list[tuple[int, Msg]]]:
    """Per source, (stream position, message) of :func:`messages`."""
    out: dict[str, list[tuple[int, Msg]]] = {}
    for g, msg in enumerate(messages(records)):
        out.setdefault(source_of(str(msg.topic)), []).append((g, msg))
    return out


def _flow(
    schemas: SchemaSource,
    records: Sequence[Framed],
    sink: CountingSink,
    clock_file: Path,
    *,
    gate: str | None = GATED,
    segment_dir: Path | None = None,
    shards: int = 1,
) -> Dataflow:
    erp: Any = sink  # the flow's ERP step takes any Sink of (key, SinkItem)
    parts = by_source(records)
    if not clock_file.exists():
        Clock.create(clock_file, len(parts))
    return build_flow(
        SourceSource(parts, clock_file, gate),
        decoder=lambda: ChangeDecoder(schemas),
        mappings=load_mappings(),
        erp_sink=erp,
        topics=sorted({r.topic for r in records}),
        segment_dir=segment_dir,
        shards=shards,
    )


@dataclass(frozen=True)
class Run:
    """One flow pass: wall seconds (the slowest process), emissions at the ERP step and the
    digest of the lines' final targets (:meth:`CountingSink.digest`)."""

    processes: int
    workers: int  # per process
    seconds: float
    emissions: int
    digest: str


def run_in_process(
    schemas: SchemaSource,
    records: Sequence[Framed],
    workers: int,
    *,
    recovery: Path | None = None,
    sink: CountingSink | None = None,
    shards: int = 1,
) -> Run:
    """The flow on ``workers`` threads of this process (``run_main`` for one).

    With ``recovery`` (a directory), the run resumes the Bytewax recovery store there (made
    with one partition per worker on first use) and the billing step's base and journal in
    its ``finals/``, as ``billsync run`` does: each partition reads on from where the last
    run stopped, so a caller appends records and runs again. Such runs are not gated by the
    clock (:class:`SourceSource`): the caller places its closes between runs. ``sink``: one
    to keep across runs (its lines are the latest over all of them)."""
    sink = sink if sink is not None else CountingSink()
    with tempfile.TemporaryDirectory(prefix="billsync-bench-") as tmp:
        if recovery is not None:
            _make_store(recovery, workers)
        options, segment_dir = _recovery_options(recovery)
        flow = _flow(schemas, records, sink, Path(tmp) / "clock",
                     gate=None if recovery is not None else GATED,
                     segment_dir=segment_dir, shards=shards)  # fmt: skip
        began = time.perf_counter()
        if workers == 1:
            run_main(flow, **options)  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated
        else:
            cluster_main(flow, [], 0, worker_count_per_proc=workers, **options)  # type: ignore[no-untyped-call]  # idem
        return Run(1, workers, time.perf_counter() - began, sink.emissions, sink.digest())


def _free_ports(n: int) -> list[int]:
    """``n`` loopback ports for the cluster's processes, below the ephemeral range
    (:mod:`ops.run.ports`)."""
    base = free_cluster_ports(n)
    return list(range(base, base + n))


def _make_store(recovery: Path, partitions: int) -> None:
    """The Bytewax recovery store under ``recovery``, with ``partitions`` partitions, unless
    an earlier run made it."""
    store = recovery / "store"
    if not store.exists():
        store.mkdir(parents=True)
        init_db_dir(store, partitions)  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated


def _recovery_options(recovery: Path | None) -> tuple[dict[str, Any], Path | None]:
    """Bytewax's recovery option and the billing step's segment directory for a run that
    resumes the store under ``recovery`` (made by :func:`_make_store`)."""
    if recovery is None:
        return {}, None
    segment_dir = recovery / "finals"
    segment_dir.mkdir(exist_ok=True)
    return {"recovery_config": RecoveryConfig(str(recovery / "store"))}, segment_dir  # type: ignore[no-untyped-call]  # idem


def run_processes(
    schemas: SchemaSource,
    records: Sequence[Framed],
    processes: int,
    workers: int,
    *,
    recovery: Path | None = None,
    sink: CountingSink | None = None,
    shards: int = 1,
) -> Run:
    """The flow as a cluster of ``processes`` processes of ``workers`` workers each.

    ``recovery`` and ``sink`` as for :func:`run_in_process`: the processes resume the store
    there, and the lines that reached the ERP step are merged into ``sink``. ``shards`` > 1
    without ``recovery``: the shards exchange their final segments in a directory of the
    run that every process shares."""
    with tempfile.TemporaryDirectory(prefix="billsync-bench-") as tmp:
        data = Path(tmp) / "records.pickle"
        data.write_bytes(pickle.dumps((schemas, list(records))))
        clock = Clock.create(Path(tmp) / "clock", len({source_of(r.topic) for r in records}))
        if recovery is not None:
            _make_store(recovery, processes * workers)  # once, before the processes
        addresses = ",".join(f"127.0.0.1:{p}" for p in _free_ports(processes))
        procs = []
        for i in range(processes):
            lines = f"{tmp}/lines-{i}.pickle" if sink is not None else "-"  # wanted or not
            argv = [sys.executable, "-m", "ops.bench.cluster", str(data), addresses, str(i),
                    str(workers), str(clock), str(recovery or "-"), lines, str(shards),
                    f"{tmp}/segments"]  # fmt: skip
            # our own interpreter and module, no shell
            procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))  # noqa: S603
        reports = []
        for p in procs:
            out, _ = p.communicate()
            if p.returncode != 0:
                raise RuntimeError(f"bench cluster process exited {p.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
        if sink is not None:
            for i in range(processes):
                lines = pickle.loads(Path(f"{tmp}/lines-{i}.pickle").read_bytes())  # noqa: S301  # written by our own child
                sink.lines.update(lines)
            sink.emissions += sum(r["emissions"] for r in reports)
    # one worker of the cluster runs the ERP step: its process saw every line
    writer = max(reports, key=lambda r: r["emissions"])
    return Run(
        processes,
        workers,
        max(r["seconds"] for r in reports),
        sink.emissions if sink is not None else writer["emissions"],
        sink.digest() if sink is not None else writer["digest"],
    )


def _main(argv: Sequence[str]) -> str:
    """One process of :func:`run_processes`: its report, one JSON line (and, when the parent
    names a file, the lines that reached its ERP step, pickled there)."""
    data, addresses, proc_id, workers, clock_file, recovery, lines_file, shards, shared = argv
    schemas, records = pickle.loads(Path(data).read_bytes())  # noqa: S301  # see run_processes
    sink = CountingSink()
    resume = None if recovery == "-" else Path(recovery)
    options, segment_dir = _recovery_options(resume)  # the parent made the store
    if segment_dir is None and int(shards) > 1:
        segment_dir = Path(shared)  # the shards' exchange, shared by the processes
    flow = _flow(schemas, records, sink, Path(clock_file),
                 gate=None if resume is not None else GATED, segment_dir=segment_dir,
                 shards=int(shards))  # fmt: skip
    began = time.perf_counter()
    cluster_main(
        flow, addresses.split(","), int(proc_id), worker_count_per_proc=int(workers), **options
    )  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated
    seconds = time.perf_counter() - began
    if lines_file != "-":
        Path(lines_file).write_bytes(pickle.dumps(sink.lines))
    return json.dumps({"seconds": seconds, "emissions": sink.emissions, "digest": sink.digest()})


if __name__ == "__main__":
    tune_gc()  # as the flow's processes run (ops/run/gctune.py)
    print(_main(sys.argv[1:]))  # the report the parent process reads
