"""Start, check, stop the local stack: the engine behind ``billsync stack``.

``up`` is idempotent: a component whose pid file names a live process is only health-checked;
others are prepared, spawned detached and waited on. PostgreSQL, MariaDB, Apicurio and Kafka
start in parallel; Connect starts once Kafka answers metadata requests.
"""

from __future__ import annotations

import fcntl
import shutil
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from billsync.errors import StackError
from billsync.settings import Settings
from ops.stack import install as installer
from ops.stack import procs, secrets
from ops.stack import topology as t
from ops.stack.apicurio import Apicurio
from ops.stack.component import Component, StackContext
from ops.stack.kafka import Connect, Kafka
from ops.stack.mariadb import MariaDB
from ops.stack.paths import StackPaths
from ops.stack.postgres import Postgres

Report = Callable[[str, str], None]  # (component, message)

START_ORDER = t.COMPONENTS

CLASSES: dict[str, type[Component]] = {
    "postgres": Postgres,
    "mariadb": MariaDB,
    "kafka": Kafka,
    "apicurio": Apicurio,
    "connect": Connect,
}


@dataclass(frozen=True)
class Started:
    component: str
    pid: int
    seconds: float
    reused: bool


def context(settings: Settings, *, create_secrets: bool = True) -> StackContext:
    paths = StackPaths.from_settings(settings)
    passwords: dict[str, str] = {}
    if create_secrets or paths.secrets.exists():
        passwords = secrets.load_or_create(paths)
    return StackContext(settings=settings, paths=paths, passwords=passwords)


def components(ctx: StackContext) -> dict[str, Component]:
    return {name: CLASSES[name](ctx) for name in t.COMPONENTS}


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def running(component: Component) -> procs.PidRecord | None:
    record = procs.read(component.ctx.paths.pid_file(component.name))
    return record if record is not None and procs.is_alive(record) else None


def _tail(component: Component, lines: int = 5) -> str:
    try:
        text = component.log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text.splitlines()[-lines:] if line.strip())


def wait_healthy(component: Component, record: procs.PidRecord, report: Report) -> None:
    deadline = time.monotonic() + component.start_timeout
    reason: str | None = "not checked yet"
    while time.monotonic() < deadline:
        if not procs.is_alive(record):
            raise StackError(
                component.name,
                f"process {record.pid} exited during start-up; last log lines: {_tail(component)}",
                str(component.log_file),
            )
        reason = component.check()
        if reason is None:
            return
        report(component.name, f"waiting: {reason[:90]}")
        time.sleep(1.0)
    raise StackError(
        component.name,
        f"not healthy after {component.start_timeout:.0f}s: {reason}",
        str(component.log_file),
    )


def start(component: Component, report: Report) -> Started:
    """Start one component (or reuse it when running) and wait until it is healthy."""
    began = time.monotonic()
    record = running(component)
    reused = record is not None
    if record is None:
        if not _port_free(component.port):
            raise StackError(
                component.name,
                f"port 127.0.0.1:{component.port} is taken by a process this stack did not start; "
                f"fix: stop it or choose another port (BILLSYNC_*_PORT, see ops/README.md)",
                None,
            )
        report(component.name, "preparing")
        component.prepare()
        launch = component.launch()
        report(component.name, "starting")
        record = procs.spawn(
            launch.argv,
            log_file=component.log_file,
            pid_file=component.ctx.paths.pid_file(component.name),
            env=launch.env,
            cwd=launch.cwd,
            user=launch.user,
        )
    wait_healthy(component, record, report)
    component.provision()
    report(component.name, "healthy")
    return Started(component.name, record.pid, time.monotonic() - began, reused)


def up(settings: Settings, report: Report, say: Callable[[str], None]) -> list[Started]:
    """Install when needed, start what is not running, wait until everything is healthy.

    Two concurrent ``up`` calls (two test sessions) serialise on ``run/up.lock``: the second
    one then finds the components running and only checks them.
    """
    paths = StackPaths.from_settings(settings)
    paths.run.mkdir(parents=True, exist_ok=True)
    with (paths.run / "up.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _up_locked(settings, report, say)


def _up_locked(settings: Settings, report: Report, say: Callable[[str], None]) -> list[Started]:
    ctx = context(settings)
    for sub in (ctx.paths.logs, ctx.paths.run, ctx.paths.conf, ctx.paths.data):
        sub.mkdir(parents=True, exist_ok=True)
    ctx.paths.root.chmod(0o755)
    ctx.paths.data.chmod(0o755)
    ctx.paths.db_root.mkdir(parents=True, exist_ok=True)
    ctx.paths.db_root.chmod(0o755)
    installer.install(ctx.paths, say)
    comps = components(ctx)

    def kafka_then_connect() -> list[Started]:
        return [start(comps["kafka"], report), start(comps["connect"], report)]

    results: list[Started] = []
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [
            pool.submit(start, comps[n], report) for n in ("postgres", "mariadb", "apicurio")
        ]
        chain = pool.submit(kafka_then_connect)
        for future in futures:
            try:
                results.append(future.result())
            except BaseException as exc:  # collected: every component gets its chance first
                errors.append(exc)
        try:
            results.extend(chain.result())
        except BaseException as exc:  # collected, re-raised below
            errors.append(exc)
    if errors:
        raise errors[0]
    secrets.write_env_file(ctx.paths, secrets.connection_env(settings, dict(ctx.passwords)))
    return results


def stop_component(component: Component) -> bool:
    pid_file = component.ctx.paths.pid_file(component.name)
    record = procs.read(pid_file)
    stopped = False
    if record is not None:
        stopped = procs.stop(record, sig=component.stop_signal, timeout=90)
    pid_file.unlink(missing_ok=True)
    return stopped


def down(settings: Settings, *, purge: bool, report: Report) -> list[str]:
    ctx = context(settings, create_secrets=False)
    comps = components(ctx)
    stopped: list[str] = []
    # Connect first (it commits source offsets to Kafka on a clean shutdown), then the rest
    report("connect", "stopping")
    if stop_component(comps["connect"]):
        stopped.append("connect")
    rest = [n for n in ("kafka", "apicurio", "mariadb", "postgres")]
    with ThreadPoolExecutor(max_workers=len(rest)) as pool:
        for name in rest:
            report(name, "stopping")
        for name, was_running in zip(
            rest, pool.map(lambda n: stop_component(comps[n]), rest), strict=True
        ):
            if was_running:
                stopped.append(name)
    if purge:
        shutil.rmtree(ctx.paths.root, ignore_errors=True)
        shutil.rmtree(ctx.paths.fallback_db_root, ignore_errors=True)
    return stopped


def restart(settings: Settings, name: str, report: Report) -> Started:
    """Stop one component by its pid and start it again (chaos and recovery tests)."""
    ctx = context(settings)
    component = components(ctx)[name]
    stop_component(component)
    return start(component, report)


def status(settings: Settings) -> list[dict[str, Any]]:
    ctx = context(settings, create_secrets=False)
    rows: list[dict[str, Any]] = []
    for name, component in components(ctx).items():
        record = running(component)
        reason: str | None = "not running"
        if record is not None:
            # a single slow answer on a busy 2-core box is not "unhealthy": ask three times
            for attempt in range(3):
                try:
                    reason = component.check()
                except Exception as exc:  # any failure of a probe is a reason, not a crash
                    reason = f"check raised {type(exc).__name__}: {exc}"
                if reason is None:
                    break
                if attempt < 2:
                    time.sleep(1.0)
        healthy = reason is None
        rows.append(
            {
                "component": name,
                "pid": record.pid if record else None,
                "port": component.port,
                "running": record is not None,
                "healthy": healthy,
                "rss_mb": round(procs.rss_bytes(record.pid) / 2**20) if record else None,
                "reason": reason,
                "log": str(component.log_file),
            }
        )
    return rows


def env(settings: Settings) -> dict[str, str]:
    ctx = context(settings, create_secrets=False)
    if not ctx.passwords:
        raise StackError(
            "stack", f"no secrets in {ctx.paths.secrets}; fix: run `billsync stack up` first", None
        )
    return secrets.connection_env(settings, dict(ctx.passwords))
