"""soak 02 — new connectors, counted: does a converter's first schema POST hang?

Why it exists: ARCHITECTURE.md's known issues name a registry response that its client never
receives; it showed as a NEW connector's first key-schema ``POST`` (Connect's Apicurio
converter, whose JDK HTTP client has no timeout) hanging for minutes, so the throwaway
connector of a CDC scenario delivered nothing (1 of 21 CDC scenario runs in one CI run; 2 of
6 fresh-clone CI runs). The CDC catalogue reruns such a scenario; this test does not.

Each run does what exposed it, for both sources: a throwaway copy of the shipped ``psa`` and
``crm`` connector (own name = topic prefix, narrowed to one contract table, as
``tests/integration/cdc`` makes them) is registered while the shipped connectors stream a
mixed PSA/CRM load (``RATE`` changes/s); its converter must ``POST`` new key and value
schemas to Apicurio (the schema names carry the new prefix). ``ROWS`` rows of the run's own
are written before the registration (snapshot) and ``ROWS`` after it (streaming); every one
must be in the connector's topic within ``BOUND_S`` of the registration. No rerun and no
heal: a connector that misses the bound FAILS the run, and before that the run saves the
evidence (``evidence``): ``jstack`` of the Connect worker and of Apicurio, ``ss`` of the
sockets to the registry port, the connector status, and the Apicurio and Connect log lines
written during the run (Apicurio's access log names each request with status, bytes sent and
milliseconds, written when the response is done: ``ops/stack/apicurio.py``).

The bound, 60 s: a healthy new connector has all its rows in the topic in a few seconds (the
registration itself, task RUNNING, is most of it), while the hangs seen lasted 3 and 13
minutes (the converter waits until the connection breaks). 60 s is an order of magnitude
above the first and well under the second, so a slow run on the busy 2-core box does not
pass for a hang, and a hang cannot pass for slow.

Each run prints one line: per source, the seconds from the registration to the first record
of the topic (its Kafka timestamp) and to the last of the run's rows, and the schema
``POST``s of the converter that Apicurio's access log shows answered, with their statuses.
The figure is failed runs / runs: ``make soak SOAK=registry RUNS=30``.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from confluent_kafka import Consumer

from billsync.settings import Settings
from connectors.connect_client import ConnectClient
from connectors.registration import register
from ops.stack import launcher
from tests.chaos.load import Load
from tests.e2e.harness import stack_report
from tests.integration.cdc.support import CRM, PSA, Source, Throwaway
from tests.integration.connector_copies import write_copy

BOUND_S = 60.0  # from the registration to the last of the run's rows in the topic (see above)
ROWS = 3  # written before the registration (snapshot) and again after it (streaming)
RATE = 8.0  # changes per second of the load on the shipped connectors, as soak 01

ACCESS_LOG = "[io.qu.ht.access-log]"
# the converter's artifact POSTs (registry v2 API), as the access log pattern writes them
SCHEMA_POST = re.compile(
    r'"POST /apis/registry/v2/\S+ HTTP/[\d.]+" (?P<status>\d{3}) (?P<bytes>\S+) (?P<ms>\S+)ms'
    r".* artifact=(?P<artifact>\S+)"
)


@dataclass(frozen=True)
class Post:
    """One schema POST that Apicurio's access log shows answered."""

    artifact: str  # <topic>-key or <topic>-value
    status: str
    bytes: str
    ms: str


@dataclass
class Watched:
    """One throwaway of a run: its rows and what its topic showed."""

    throwaway: Throwaway
    started: float  # wall clock (s) when the registration began
    keys: set[str] = field(default_factory=set)
    first_s: float | None = None  # first record of the topic, by its Kafka timestamp
    seen: dict[str, float] = field(default_factory=dict)  # row key -> seconds after start
    error: str | None = None  # the registration failed (task FAILED, or not RUNNING in time)

    @property
    def complete(self) -> bool:
        return self.error is None and self.keys <= set(self.seen)

    def describe(self, posts: list[Post]) -> str:
        src = self.throwaway.source.id
        mine = [p for p in posts if self.throwaway.name in p.artifact]
        answered = f"schema POSTs answered {len(mine)} ({_statuses(mine)})"
        if self.error is not None:
            return f"{src}: registration failed: {self.error}; {answered}"
        first = "none" if self.first_s is None else f"{self.first_s:.1f}s"
        rows = f"{len(self.seen)}/{len(self.keys)} rows"
        if self.complete:
            rows += f" by {max(self.seen.values()):.1f}s"
        return f"{src}: first record {first}, {rows}, {answered}"


def test_a_new_connector_delivers_within_the_bound(
    soak_run: int,
    stack: Settings,
    connect: ConnectClient,
    make_throwaway: Callable[[Source], Throwaway],
    load: Load,
) -> None:
    t0 = time.monotonic()
    logs = Logs(stack)
    load.world()
    load.start(rate=RATE)
    try:
        watched = [_register(make_throwaway(src), stack, connect) for src in (PSA, CRM)]
        for w in watched:
            if w.error is None:
                w.keys |= _insert(w.throwaway, "s")
        _wait(stack, watched)
    finally:
        load.stop()
    posts = _schema_posts(logs.apicurio_since())
    line = "; ".join(w.describe(posts) for w in watched)
    print(f"registry soak run {soak_run}: {line}; {time.monotonic() - t0:.0f}s in all")
    late = [w for w in watched if not w.complete]
    if late:
        where, summary = evidence(stack, connect, [w.throwaway.name for w in late], logs)
        pytest.fail(
            f"run {soak_run}: not delivered within {BOUND_S:.0f}s: "
            + "; ".join(w.describe(posts) for w in late)
            + f"\n{summary}\nevidence saved in {where}",
            pytrace=False,
        )


# --- one run ---------------------------------------------------------------------------------


def _insert(throwaway: Throwaway, label: str) -> set[str]:
    keys = {throwaway.key(label) for _ in range(ROWS)}
    for key in sorted(keys):
        throwaway.insert(key)
    return keys


def _register(throwaway: Throwaway, stack: Settings, connect: ConnectClient) -> Watched:
    """Rows for the snapshot, then the connector (waits until its task runs, within the
    bound); a registration that fails is recorded, not raised, so the run saves evidence."""
    keys = _insert(throwaway, "b")
    write_copy(
        throwaway.directory, throwaway.source.id, throwaway.name, tables=[throwaway.source.table]
    )
    watched = Watched(throwaway, started=time.time(), keys=keys)
    try:
        register(throwaway.name, stack, connect, directory=throwaway.directory, timeout_s=BOUND_S)
    except Exception as exc:  # FAILED or not RUNNING in time: the run's finding
        watched.error = f"{type(exc).__name__}: {exc}"
    return watched


def _wait(stack: Settings, watched: list[Watched]) -> None:
    """Read the throwaways' topics until every row is there or each one's bound has passed.

    Rows are found by their key's bytes in the record key (an Avro string, after the 5-byte
    registry header): no decoding, so the test's own registry lookups stay out of the run."""
    topics = {w.throwaway.topic: w for w in watched if w.error is None}
    if not topics:
        return
    consumer = Consumer(
        {
            "bootstrap.servers": stack.kafka_bootstrap,
            "group.id": f"it_soak_registry_{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "topic.metadata.refresh.interval.ms": 1000,
        }
    )
    consumer.subscribe(list(topics))
    deadline = max(w.started for w in topics.values()) + BOUND_S
    try:
        while time.time() < deadline and not all(w.complete for w in topics.values()):
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            w = topics[msg.topic()]
            _kind, stamp_ms = msg.timestamp()
            after = stamp_ms / 1000 - w.started
            if w.first_s is None or after < w.first_s:
                w.first_s = after
            key = msg.key() or b""
            for row in w.keys:
                if row.encode() in key and msg.value() is not None:
                    w.seen.setdefault(row, time.time() - w.started)
    finally:
        consumer.close()
    for w in topics.values():
        # a row that arrived after its own bound (the other connector's was later) is late
        w.seen = {k: s for k, s in w.seen.items() if s <= BOUND_S}


def _schema_posts(lines: list[str]) -> list[Post]:
    """Each registry v2 artifact POST in access-log ``lines``."""
    found = []
    for line in lines:
        m = SCHEMA_POST.search(line) if ACCESS_LOG in line else None
        if m is not None:
            found.append(Post(m["artifact"], m["status"], m["bytes"], m["ms"]))
    return found


def _statuses(posts: list[Post]) -> str:
    counts: dict[str, int] = {}
    for post in posts:
        counts[post.status] = counts.get(post.status, 0) + 1
    return ", ".join(f"{n}x {s}" for s, n in sorted(counts.items())) or "none"


# --- evidence --------------------------------------------------------------------------------


class Logs:
    """The Apicurio and Connect logs from the start of a run (byte offsets taken then)."""

    def __init__(self, stack: Settings) -> None:
        ctx = launcher.context(stack, create_secrets=False)
        self.apicurio = ctx.paths.log_file("apicurio")
        self.connect = ctx.paths.log_file("connect")
        self.marks = {p: _size(p) for p in (self.apicurio, self.connect)}

    def since(self, path: Path) -> list[str]:
        try:
            with path.open("rb") as f:
                f.seek(self.marks[path])
                return f.read().decode("utf-8", errors="replace").splitlines()
        except OSError:
            return []

    def apicurio_since(self) -> list[str]:
        return self.since(self.apicurio)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _run(argv: list[str], timeout: float = 60.0) -> str:
    try:
        proc = subprocess.run(  # noqa: S603  # fixed tools, arguments from the stack's own files
            argv, capture_output=True, text=True, check=False, timeout=timeout
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{' '.join(argv)}: {type(exc).__name__}: {exc}\n"
    return proc.stdout + proc.stderr


def jstack(pid: int) -> str:
    """Every thread's stack of JVM ``pid``, by the ``jstack`` of the JDK the process runs on
    (the stack runs Connect on Java 17 and Apicurio on Temurin 25, both under /usr/lib/jvm)."""
    try:
        tool = Path(os.readlink(f"/proc/{pid}/exe")).parent / "jstack"
    except OSError as exc:
        return f"no /proc/{pid}/exe: {exc}\n"
    return _run([str(tool), "-l", str(pid)])


def thread_stacks(dump: str, name_part: str, frames: int = 25) -> list[str]:
    """The first ``frames`` lines of each thread of ``dump`` whose name contains ``name_part``."""
    out = []
    for block in dump.split("\n\n"):
        head = block.lstrip().splitlines()[:1]
        if head and head[0].startswith('"') and name_part in head[0].split('"')[1]:
            out.append("\n".join(block.strip().splitlines()[:frames]))
    return out


def evidence(
    stack: Settings, connect: ConnectClient, names: list[str], logs: Logs
) -> tuple[Path, str]:
    """Save what shows where a late connector's registry exchange stopped, before its
    teardown deletes it: ``<stack>/logs/soak-registry/<name>/``. Returns that directory and
    a summary for the failure message (the task threads' stacks, the POSTs, the sockets)."""
    ctx = launcher.context(stack, create_secrets=False)
    where = ctx.paths.logs / "soak-registry" / names[0]
    where.mkdir(parents=True, exist_ok=True)
    summary: list[str] = []
    comps = launcher.components(ctx)
    dumps: dict[str, str] = {}
    for comp in ("connect", "apicurio"):
        record = launcher.running(comps[comp])
        dumps[comp] = jstack(record.pid) if record is not None else f"{comp} not running\n"
        (where / f"{comp}.jstack").write_text(dumps[comp], encoding="utf-8")
    for name in names:
        tasks = thread_stacks(dumps["connect"], f"task-thread-{name}")
        summary += tasks or [f"no task thread of {name} in the Connect jstack"]
    port = stack.apicurio_port
    sockets = _run(["ss", "-tnpoi", f"( sport = :{port} or dport = :{port} )"])
    (where / "sockets.txt").write_text(sockets, encoding="utf-8")
    status = []
    for name in names:
        with contextlib.suppress(Exception):
            status.append(f"{name}: {connect.status(name)}")
    status.append(stack_report(stack))
    (where / "status.txt").write_text("\n".join(status) + "\n", encoding="utf-8")
    apicurio = logs.apicurio_since()
    access = [line for line in apicurio if ACCESS_LOG in line]
    (where / "apicurio-access.log").write_text("\n".join(access) + "\n", encoding="utf-8")
    (where / "apicurio.log").write_text("\n".join(apicurio) + "\n", encoding="utf-8")
    (where / "connect.log").write_text("\n".join(logs.since(logs.connect)) + "\n", "utf-8")
    summary.append("status: " + " | ".join(status[:-1]))
    summary.append("Apicurio access log, POSTs of the run:")
    summary += [f"  {line}" for line in access if '"POST ' in line] or ["  none"]
    summary.append(f"sockets to/from :{port} (ss -tnpoi):")
    # the connection lines (the -i details are in the file): a Recv-Q above 0 on Connect's
    # end is an answer that arrived and was not read, a Send-Q on Apicurio's one not sent
    summary += [f"  {line.rstrip()}" for line in sockets.splitlines()[:60] if line[:1].isalpha()]
    return where, "\n".join(summary)
