"""The e2e harness: a real ``billsync run`` subprocess with its own ERP schema, and probes.

- :class:`Flow`: ``billsync run`` as a child process with an isolated environment — its own
  recovery dir, metrics port and ERP (a fresh PostgreSQL schema of the ``erp`` database,
  selected with libpq's ``options=-csearch_path=<schema>``), snapshots every second. It reads
  the shared source topics from the beginning, so its ERP holds the whole world (seed data
  included); tests assert on their own rows and use ``billsync recon audit`` (same env) as
  the global check. ``kill()`` is SIGKILL; ``start()`` again resumes from the recovery dir.
- :class:`Erp`: read the flow's ERP schema; :meth:`Erp.wait_lines` polls until the given
  lines have the expected fields, failing with a table of expected vs current rows.
- :func:`ledger_violations`: the "no effect posted twice" invariants of one item's entries.
- :class:`Sources`: insert/update/delete rows of the real PSA and CRM tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import (
    Engine,
    Table,
    create_engine,
    delete,
    func,
    insert,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import make_url

from billsync.settings import Settings
from connectors import sources as src
from dataflows.billing.ledger import transaction_id
from ops.run.ports import free_cluster_ports
from ops.run.watchdog import STALL_EXIT
from sinks.erp import tables as erp
from tests import supervision

REPO = Path(__file__).resolve().parents[2]
BILLSYNC = [sys.executable, "-m", "ops.cli"]
WAIT_S = 300.0  # longest wait for the ERP to reflect a change (catch-up from offset 0 included)


def stack_report(settings: Settings, flow_log: Path | None = None) -> str:
    """What a failing wait prints first: the state of the psa, crm and erp connectors (with the
    first line of a failure trace) and the last lines of the flow's log. A CI log may keep
    only part of the output, so the cause must come before the long list of wrong rows."""
    from connectors.connect_client import ConnectClient
    from connectors.freshness import describe, heartbeat_age, heartbeat_topic

    lines = []
    try:
        with ConnectClient(settings.connect_url, timeout=10) as connect:
            for name in ("psa", "crm", "erp"):
                st = connect.status(name)
                if st is None:
                    lines.append(f"connector {name}: not registered")
                    continue
                tasks = ", ".join(f"task {t.id} {t.state}" for t in st.tasks) or "no task"
                trace = st.first_trace()
                config = connect.config(name) or {}
                age = heartbeat_age(settings.kafka_bootstrap, heartbeat_topic(config))
                beat = describe(config, age)
                lines.append(
                    f"connector {name}: {st.state}; {tasks}; {beat}"
                    + (f"; {trace[:300]}" if trace else "")
                )
    except Exception as exc:  # a report must not mask the failure it reports
        lines.append(f"Kafka Connect not reachable: {type(exc).__name__}: {exc}")
    lines += _topic_ages(settings, ("psa.public.timesheets", "crm.crm.contracts"))
    if flow_log is not None and flow_log.exists():
        tail = flow_log.read_text(encoding="utf-8", errors="replace").splitlines()[-5:]
        lines += [f"flow.log: {line[:300]}" for line in tail]
    return "\n".join(lines)


HEAL_EVERY_S = 20.0


def heal_sources(settings: Settings) -> list[str]:
    """``billsync connectors heal`` for the psa, crm and erp connectors: restart one that FAILED
    or stopped streaming (no heartbeat for six intervals), as an operator or a timer would.
    Prints and returns what it restarted, so a run shows every time it was needed."""
    from connectors.connect_client import ConnectClient
    from connectors.heal import heal

    try:
        with ConnectClient(settings.connect_url, timeout=10) as connect:
            done = heal(connect, settings.kafka_bootstrap, ("psa", "crm", "erp"))
    except Exception as exc:  # Connect restarting (chaos): the wait goes on
        return [f"heal skipped: {type(exc).__name__}: {exc}"]
    lines = [f"healed: restarted connector {h.connector} ({h.reason})" for h in done]
    for h, line in zip(done, lines, strict=True):
        print(line)
        supervision.record(supervision.CONNECTOR_HEAL, f"{h.connector} ({h.reason})")
    return lines


def _topic_ages(settings: Settings, topics: Sequence[str]) -> list[str]:
    """``topic: newest record written Ms ago`` (partition 0) for each topic."""
    from connectors.freshness import heartbeat_age  # the age of any topic's newest record

    out = []
    for topic in topics:
        try:
            age = heartbeat_age(settings.kafka_bootstrap, topic)
        except Exception as exc:  # a report must not mask the failure it reports
            out.append(f"{topic}: not readable: {type(exc).__name__}: {exc}")
            continue
        out.append(f"{topic}: " + ("empty" if age is None else f"newest written {age:.0f}s ago"))
    return out


def free_port() -> int:
    """A loopback port free now, below the kernel's ephemeral range (a port in it may be
    taken as the local port of an outgoing connection before a restart binds it again:
    :mod:`ops.run.ports`), with the next one free too (a second process's metrics port)."""
    return free_cluster_ports(2)


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive loopback ports that are free now, below the kernel's
    ephemeral range (``billsync run --processes N --base-port P`` listens on P .. P+N-1 and
    refuses ports in that range: :mod:`ops.run.ports`)."""
    return free_cluster_ports(n)


# `billsync run` options of the clusters the e2e tests run the flow as: one process of one
# worker (the default), and 2 processes of 2 workers each (issue 13, point 2: the billing
# step and the ERP writer then run on workers that the decoding workers reach through
# Bytewax's exchange between processes)
CLUSTERS: dict[str, Callable[[], tuple[str, ...]]] = {
    "1x1": lambda: (),
    "2x2": lambda: ("--processes", "2", "--workers", "2", "--base-port", str(free_ports(2))),
    # the billing step in 2 shards of contracts (BILLSYNC_SHARDS, dataflows/sharding.py), each
    # on a worker of its own, the sequencer and the merge on others
    "2x2-shards": lambda: (
        "--processes", "2", "--workers", "2", "--base-port", str(free_ports(2)),
    ),
}  # fmt: skip
# the settings of a cluster beyond its `billsync run` options
CLUSTER_ENV: dict[str, dict[str, str]] = {"2x2-shards": {"BILLSYNC_SHARDS": "2"}}
# the clusters of one billing key (tests whose point is not the billing step's layout)
PLAIN_CLUSTERS = ("1x1", "2x2")


def schema_url(base_url: str, schema: str) -> str:
    """``base_url`` with libpq's ``options=-csearch_path=<schema>``: every connection of the
    flow, the audit and the test lands in that schema (and only there)."""
    url = make_url(base_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


@dataclass
class Flow:
    """One ``billsync run`` child process (and the ``billsync`` commands of its world)."""

    settings: Settings
    schema: str
    recovery_dir: Path
    log_path: Path
    metrics_port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()  # more `billsync run` options, e.g. --processes 2 --workers 2
    extra_env: dict[str, str] = field(default_factory=dict)  # e.g. BILLSYNC_SHARDS
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    _log: TextIO | None = None

    @property
    def erp_url(self) -> str:
        return schema_url(self.settings.require("erp_db_url"), self.schema)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "BILLSYNC_STACK_DIR": str((REPO / self.settings.stack_dir).resolve()),
                "PSA_DB_URL": self.settings.require("psa_db_url"),
                "CRM_DB_URL": self.settings.require("crm_db_url"),
                "ERP_DB_URL": self.erp_url,
                # closes and reopens of this flow's own ERP schema only (the erp connector
                # captures every schema's accounting_periods into a topic of its own)
                "BILLSYNC_PERIODS_TOPIC": f"erp.{self.schema}.accounting_periods",
                "KAFKA_BOOTSTRAP": self.settings.kafka_bootstrap,
                "SCHEMA_REGISTRY_URL": self.settings.schema_registry_url,
                "BILLSYNC_RECOVERY_DIR": str(self.recovery_dir),
                "BILLSYNC_METRICS_PORT": str(self.metrics_port),
                "BILLSYNC_SNAPSHOT_INTERVAL_S": "1",
                "BILLSYNC_RECON_INTERVAL_S": "1",
                "BILLSYNC_STALL_EXIT_S": "30",
                "BILLSYNC_ERP_RETRY_S": "20",  # the watchdog must wait longer than the ERP retry
                "NO_COLOR": "1",
                "COLUMNS": "200",
                **self.extra_env,
            }
        )
        return env

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "flow already running"
        self.starts += 1
        self._log = self.log_path.open("a", encoding="utf-8")
        self._log.write(f"\n=== start #{self.starts} at {time.strftime('%H:%M:%S')} ===\n")
        self._log.flush()
        self.proc = subprocess.Popen(  # noqa: S603  # our own CLI, fixed arguments
            [*BILLSYNC, "run", *self.args],
            cwd=REPO,
            env=self.env(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() == STALL_EXIT:
            # the flow's stall watchdog asked for a restart (ARCHITECTURE.md, known issues):
            # do what the supervisor does in production, and say so
            stacks = self.stall_stacks()
            print(f"flow exited {STALL_EXIT} (stall watchdog); restarted\n{stacks}", flush=True)
            supervision.record(
                supervision.STALL_RESTART,
                f"flow {self.schema}, start #{self.starts}; where it stood:\n{stacks}",
            )
            self._close_log()
            self.start()
            return
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"billsync run exited with {self.proc.returncode}; log tail:\n{self.log_tail()}"
            )

    def kill(self) -> None:
        """SIGKILL: no snapshot, no flush, no goodbye — to the flow's process group (it runs
        in a session of its own), so that with ``--processes N`` the Bytewax processes it
        spawned die with it, as under a supervisor that kills the service's cgroup."""
        assert self.proc is not None
        self._kill_group()
        self.proc.wait(30)
        self._close_log()

    def _kill_group(self) -> None:
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it does not stop within 30 s."""
        if self.proc is None or self.proc.poll() is not None:
            self._close_log()
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self._kill_group()
            self.proc.wait(30)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def stall_stacks(self, frames: int = 40) -> str:
        """The busiest part of the watchdog's ``stall_stacks`` report (py-spy) in the log: the
        first ``frames`` lines of each thread that is not idle in a wait (issue 12)."""
        if not self.log_path.exists():
            return "(no log)"
        for line in reversed(self.log_path.read_text(errors="replace").splitlines()):
            if '"stall_stacks"' not in line:
                continue
            try:
                text = str(json.loads(line).get("stacks", ""))
            except ValueError:
                return line[:4000]
            threads = re.split(r"\n(?=Thread \d+ )", text)  # py-spy: "Thread <tid> (active): ..."
            busy = [t for t in threads if "(active" in t] or threads
            return "\n\n".join("\n".join(t.splitlines()[:frames]) for t in busy)
        return "(no stall_stacks in the log: py-spy missing or not permitted)"

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def cli(self, *args: str, timeout: float = 180.0) -> subprocess.CompletedProcess[str]:
        """A ``billsync`` command with this flow's environment (same ERP schema)."""
        return subprocess.run(  # noqa: S603  # our own CLI, fixed arguments
            [*BILLSYNC, *args],
            cwd=REPO,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def audit_clean(self, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run ``billsync recon audit`` until it exits 0 (the flow may still be catching up
        with the last changes, or with other sessions' writes); fail with its last output."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            res = self.cli("recon", "audit")
            if res.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(3)
        assert res.returncode == 0, (
            f"recon audit exit {res.returncode}:\n{res.stdout}\n{res.stderr}"
        )
        return res


# --- reading the ERP ------------------------------------------------------------------------

LineKey = tuple[str, str]


class Erp:
    """The flow's ERP schema, read with the same search_path."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = create_engine(url, pool_pre_ping=True)

    def dispose(self) -> None:
        self.engine.dispose()

    def wait_tables(self, flow: Flow, timeout: float = 60.0) -> None:
        """Until the flow has created the ERP tables in its schema."""

        def ready() -> bool:
            with self.engine.connect() as conn:
                return inspect(conn).has_table(erp.billing_line_state.name)

        wait_until(ready, timeout=timeout, what="the flow's ERP tables", flow=flow)

    def count_lines(self) -> int:
        with self.engine.connect() as conn:
            n: int = conn.execute(
                select(func.count()).select_from(erp.billing_line_state)
            ).scalar_one()
            return n

    def lines(self, keys: Iterable[LineKey]) -> dict[LineKey, dict[str, Any]]:
        keys = set(keys)
        s = erp.billing_line_state
        ids = sorted({k[1] for k in keys})
        with self.engine.connect() as conn:
            rows = conn.execute(select(s).where(s.c.source_id.in_(ids))).mappings().all()
        return {(r["source_type"], r["source_id"]): dict(r) for r in rows} if ids else {}

    def ledger(self, ids: Iterable[str]) -> dict[LineKey, list[dict[str, Any]]]:
        tx = erp.erp_billing_transactions
        out: dict[LineKey, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tx).where(tx.c.source_id.in_(sorted(set(ids)))).order_by(tx.c.seq)
            ).mappings()
            for r in rows:
                out.setdefault((r["source_type"], r["source_id"]), []).append(dict(r))
        return out

    def all_ledger_violations(self) -> list[str]:
        """:func:`ledger_violations` over every item of the ERP (seed data included)."""
        tx = erp.erp_billing_transactions
        items: dict[LineKey, list[dict[str, Any]]] = {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(tx).order_by(tx.c.source_type, tx.c.source_id, tx.c.seq)
            ).mappings()
            for r in rows:
                items.setdefault((r["source_type"], r["source_id"]), []).append(dict(r))
        out = []
        for key, entries in items.items():
            out += ledger_violations(key, entries)
        return out

    def schedule(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        s = erp.invoice_schedule
        with self.engine.connect() as conn:
            rows = conn.execute(select(s).where(s.c.milestone_id.in_(sorted(set(ids)))))
            return {r["milestone_id"]: dict(r) for r in rows.mappings()}

    def wait_lines(
        self,
        expected: Mapping[LineKey, Mapping[str, Any] | None],
        *,
        flow: Flow | None = None,
        timeout: float = WAIT_S,
        what: str = "",
    ) -> dict[LineKey, dict[str, Any]]:
        """Poll until every key has the expected fields (None: no line state)."""
        deadline = time.monotonic() + timeout
        next_heal = time.monotonic() + HEAL_EVERY_S
        while True:
            current = self.lines(expected)
            wrong = _mismatches(expected, current)
            if not wrong:
                return current
            if flow is not None:
                flow.check_alive()
                if time.monotonic() > next_heal:
                    heal_sources(flow.settings)
                    next_heal = time.monotonic() + HEAL_EVERY_S
            if time.monotonic() > deadline:
                report = "" if flow is None else stack_report(flow.settings, flow.log_path) + "\n"
                raise AssertionError(
                    f"ERP did not reach the expected line states{' (' + what + ')' if what else ''}"
                    f" within {timeout:.0f}s; {len(wrong)} wrong.\n{report}" + "\n".join(wrong)
                )
            time.sleep(0.5)

    def wait_schedule(
        self,
        expected: Mapping[str, Mapping[str, Any] | None],
        *,
        flow: Flow | None = None,
        timeout: float = WAIT_S,
    ) -> None:
        deadline = time.monotonic() + timeout
        while True:
            current = self.schedule(expected)
            wrong = [
                f"  {mid}: expected {want}, have {current.get(mid)}"
                for mid, want in expected.items()
                if (want is None) != (mid not in current)
                or (want is not None and any(current[mid][f] != v for f, v in want.items()))
            ]
            if not wrong:
                return
            if flow is not None:
                flow.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError("invoice_schedule not as expected:\n" + "\n".join(wrong))
            time.sleep(0.5)


def _mismatches(
    expected: Mapping[LineKey, Mapping[str, Any] | None], current: Mapping[LineKey, Any]
) -> list[str]:
    wrong = []
    for key, want in sorted(expected.items()):
        have = current.get(key)
        if want is None:
            if have is not None:
                wrong.append(f"  {key}: expected no line state, have {_brief(have)}")
        elif have is None:
            wrong.append(f"  {key}: expected {dict(want)}, have no line state")
        elif any(have.get(f) != v for f, v in want.items()):
            wrong.append(f"  {key}: expected {dict(want)}, have {_brief(have)}")
    return wrong


def _brief(row: Mapping[str, Any]) -> str:
    keys = (
        "state",
        "reason",
        "contract_id",
        "billable_amount",
        "billed_amount",
        "held_amount",
        "tax_amount",
        "covered_hours",
    )
    return "{" + ", ".join(f"{k}={row.get(k)!s}" for k in keys) + "}"


def ledger_violations(key: LineKey, entries: Sequence[Mapping[str, Any]]) -> list[str]:
    """What would show an effect posted twice or lost, for one item's entries (by seq):
    seq is 0..n-1 without gaps, transaction ids are the deterministic ones, a ``charge``
    only when the item holds nothing, a ``reversal`` brings it to exactly 0, an
    ``adjustment`` goes from non-zero to non-zero."""
    out = []
    amount = tax = Decimal("0.00")
    for n, e in enumerate(entries):
        where = f"{key} seq {e['seq']} ({e['entry_type']} {e['amount']})"
        if e["seq"] != n:
            out.append(f"{where}: expected seq {n}")
        if e["transaction_id"] != transaction_id(key[0], key[1], e["seq"]):
            out.append(f"{where}: transaction_id is not the deterministic one")
        empty_before = amount == 0 and tax == 0
        amount += e["amount"]
        tax += e["tax_amount"]
        empty_after = amount == 0 and tax == 0
        kind = e["entry_type"]
        if kind == "charge" and not empty_before:
            out.append(f"{where}: charge while the item already holds {amount - e['amount']}")
        if kind == "reversal" and (empty_before or not empty_after):
            out.append(f"{where}: reversal does not bring the item to 0 (now {amount})")
        if kind == "adjustment" and (empty_before or empty_after):
            out.append(f"{where}: adjustment from/to an empty item")
    return out


# --- writing the sources ----------------------------------------------------------------------


class Sources:
    """Rows of the real PSA (PostgreSQL) and CRM (MariaDB) tables, by table name."""

    def __init__(self, psa: Engine, crm: Engine) -> None:
        self.psa = psa
        self.crm = crm
        self.written: dict[str, set[Any]] = {}

    def _where(self, name: str) -> tuple[Engine, Table]:
        engine = self.psa if name in src.PSA_TABLES else self.crm
        return engine, getattr(src, name)

    @staticmethod
    def _pk(table: Table) -> Any:
        return next(iter(table.primary_key.columns))

    def insert(self, name: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        engine, table = self._where(name)
        with engine.begin() as conn:
            conn.execute(insert(table), [dict(r) for r in rows])
        pk = self._pk(table).name
        self.written.setdefault(name, set()).update(r[pk] for r in rows)

    def update(self, name: str, key: Any, **values: Any) -> None:
        engine, table = self._where(name)
        with engine.begin() as conn:
            res = conn.execute(update(table).where(self._pk(table) == key).values(**values))
            assert res.rowcount == 1, f"{name} {key!r}: no such row"

    def delete(self, name: str, key: Any) -> None:
        engine, table = self._where(name)
        with engine.begin() as conn:
            conn.execute(delete(table).where(self._pk(table) == key))

    def cleanup(self) -> None:
        """Delete every row this test inserted (the shared world stays near the seed)."""
        for name, keys in self.written.items():
            engine, table = self._where(name)
            with engine.begin() as conn:
                conn.execute(delete(table).where(self._pk(table).in_(sorted(keys))))
        self.written.clear()


def wait_until(
    check: Callable[[], Any], *, timeout: float, what: str, flow: Flow | None = None
) -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if flow is not None:
            flow.check_alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def small_firm(
    s: Sources,
    p: str,
    *,
    start: date,
    timesheets: Sequence[tuple[int, date, str]],
    what: str = "e2e",
) -> None:
    """One account, T&M contract from ``start`` (100.00/h for consultants), employee and
    project, all named ``<p>-…``, and ``timesheets`` of 8 h each: (id, work date, status;
    an approved one is approved at 18:00 of its day)."""
    s.insert("accounts", [{"account_id": f"{p}-ACC", "name": what, "tax_jurisdiction": "GB",
                           "currency": "GBP", "erp_customer_id": f"CUST-{p}"}])  # fmt: skip
    s.insert("contracts", [{
        "contract_id": f"{p}-CON", "account_id": f"{p}-ACC", "contract_number": f"{p}-K",
        "contract_type": "time_and_materials", "status": "active", "currency": "GBP",
        "start_date": start, "end_date": None, "cap_amount": None,
        "cap_period": "contract", "retainer_hours_monthly": None}])  # fmt: skip
    s.insert("contract_rates", [{
        "rate_id": f"{p}-RATE", "contract_id": f"{p}-CON", "labor_category": "CONSULTANT",
        "hourly_rate": Decimal("100.00"), "effective_from": start,
        "effective_to": None}])  # fmt: skip
    s.insert("employees", [{
        "employee_id": f"{p}-EMP", "name": what, "email": "firm@e2e.example",
        "labor_category": "CONSULTANT", "cost_center": "CC-E2E", "legal_entity": "BS-UK-LTD",
        "active": True}])  # fmt: skip
    s.insert("projects", [{
        "project_id": f"{p}-PRJ", "code": f"{p}-PRJ", "name": what,
        "account_id": f"{p}-ACC", "contract_id": f"{p}-CON", "status": "active",
        "legal_entity": "BS-UK-LTD"}])  # fmt: skip
    s.insert("timesheets", [
        {"timesheet_id": n, "employee_id": f"{p}-EMP", "project_id": f"{p}-PRJ",
         "work_date": day, "hours": Decimal("8.00"), "billable": True, "status": status,
         "approved_at": datetime(day.year, day.month, day.day, 18, tzinfo=UTC)
         if status == "approved" else None, "notes": what}
        for n, day, status in timesheets
    ])  # fmt: skip


@dataclass(frozen=True)
class BilledFirm:
    """A flow of a test's own with :func:`small_firm`'s one approved line billed (8 h at
    100.00): what the bench tests measure against."""

    flow: Flow
    erp: Erp
    base: int  # the test's timesheet-id block; the control line is base + 1
    control: tuple[str, str]


def billed_firm(
    make_flow: Callable[[], Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
    what: str,
) -> BilledFirm:
    """Start a flow, write :func:`small_firm` with one approved line and wait until the ERP
    bills it."""
    base = 3 * 10**12 + int(time.time() * 1000) % 10**7 * 10_000
    control = ("timesheet", str(base + 1))
    flow = make_flow()
    flow.start()
    db = erp_of(flow)
    db.wait_tables(flow)
    small_firm(sources, prefix, start=date(2025, 1, 1), what=what,
               timesheets=[(base + 1, date(2026, 6, 1), "approved")])  # fmt: skip
    db.wait_lines({control: {"state": "billed", "billed_amount": Decimal("800.00")}},
                  flow=flow, what="the control line billed")  # fmt: skip
    return BilledFirm(flow, db, base, control)
