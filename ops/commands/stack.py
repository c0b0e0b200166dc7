"""``billsync stack``: the local CDC stack (install, up, down, status, logs, env)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from billsync.errors import StackError
from billsync.settings import get_settings
from ops.console import JsonOpt, console, emit_table
from ops.stack import install as installer
from ops.stack import launcher, topology
from ops.stack.paths import StackPaths

app = typer.Typer(help="The local stack: PostgreSQL, MariaDB, Kafka, Connect+Debezium, Apicurio.")


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.fields[component]:<9}"),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


@app.command()
def install() -> None:
    """Install Debian packages and collect the Maven artifacts (idempotent)."""
    paths = StackPaths.from_settings(get_settings())
    with console.status("installing") as status:
        installer.install(paths, lambda msg: status.update(msg))
    console.print(f"installed: Debian packages present, jars in {paths.dist}")


@app.command()
def up() -> None:
    """Start every component (reusing running ones) and wait until each is healthy."""
    settings = get_settings()
    began = time.monotonic()
    lock = threading.Lock()
    with _progress() as progress:
        tasks = {
            name: progress.add_task("queued", component=name, total=None)
            for name in topology.COMPONENTS
        }
        setup = progress.add_task("checking install", component="install", total=None)

        def report(component: str, message: str) -> None:
            with lock:
                done = message == "healthy"
                progress.update(tasks[component], description=message)
                if done:
                    progress.update(tasks[component], total=1, completed=1)

        def say(message: str) -> None:
            progress.update(setup, description=message)

        try:
            started = launcher.up(settings, report, say)
        finally:
            progress.update(setup, description="done", total=1, completed=1)
    rows = [
        {
            "component": s.component,
            "pid": s.pid,
            "state": "reused" if s.reused else "started",
            "seconds": f"{s.seconds:.1f}",
        }
        for s in started
    ]
    emit_table(rows, ["component", "pid", "state", "seconds"], title="stack up")
    console.print(
        f"stack healthy in {time.monotonic() - began:.1f}s; `billsync stack env` for URLs"
    )


@app.command()
def down(
    purge: Annotated[bool, typer.Option("--purge", help="also delete data, secrets, logs")] = False,
) -> None:
    """Stop exactly the processes `up` started (by pid) and wait for them to exit."""
    with console.status("stopping") as status:
        stopped = launcher.down(
            get_settings(), purge=purge, report=lambda c, m: status.update(f"{c}: {m}")
        )
    console.print(
        f"stopped: {', '.join(stopped) or 'nothing was running'}" + (" (purged)" if purge else "")
    )


@app.command()
def status(
    as_json: JsonOpt = False,
) -> None:
    """Each component: pid, port, healthy, resident memory."""
    rows = launcher.status(get_settings())
    emit_table(
        rows,
        ["component", "pid", "port", "running", "healthy", "rss_mb", "reason"],
        title="stack",
        as_json=as_json,
    )
    if not all(r["healthy"] for r in rows):
        raise typer.Exit(1)


@app.command()
def logs(
    component: Annotated[str, typer.Argument(help="one of: " + ", ".join(topology.COMPONENTS))],
    lines: Annotated[int, typer.Option("-n", "--lines", help="lines from the end")] = 50,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="keep printing new lines")] = False,
) -> None:
    """Print the end of a component's log file."""
    if component not in topology.COMPONENTS:
        raise StackError(
            component, f"unknown component; choose one of {', '.join(topology.COMPONENTS)}"
        )
    log = StackPaths.from_settings(get_settings()).log_file(component)
    if not log.exists():
        raise StackError(component, "no log yet (never started?)", str(log))
    argv = ["/usr/bin/tail", "-n", str(lines), *(["-F"] if follow else []), str(log)]
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C ends --follow
        subprocess.run(argv, check=False)  # noqa: S603  # fixed argv, tail from coreutils


@app.command()
def env() -> None:
    """Print `export NAME=value` lines for the running stack (contains passwords)."""
    for name, value in launcher.env(get_settings()).items():
        typer.echo(f"export {name}={value}")
