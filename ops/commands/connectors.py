"""``billsync connectors``: Debezium connectors as code, over the Kafka Connect REST API."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from billsync.errors import StackError
from billsync.settings import get_settings
from connectors.connect_client import ConnectClient, ConnectorState
from connectors.freshness import describe, heartbeat_age, heartbeat_topic
from connectors.heal import heal
from connectors.registration import ConnectorConfigInvalid, register, validate, wait_running
from connectors.rules import Violation
from connectors.templates import load_template, render, template_names
from ops.console import JsonOpt, console, emit_json, emit_table, err_console

app = typer.Typer(
    help="Debezium connectors: list, render, validate, register, status, restart, heal."
)

NameArg = Annotated[str, typer.Argument(help="connector name = template file connectors/NAME.json")]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", help="seconds to wait for RUNNING", min=1.0)
]


def _client() -> ConnectClient:
    return ConnectClient(get_settings().connect_url)


def _state_rows(state: ConnectorState, cdc: str | None = None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = [
        {
            "connector": state.name,
            "part": "connector",
            "state": state.state,
            "worker": state.worker_id,
            "cdc": cdc,
            "error": (state.trace or "").strip().splitlines()[0] if state.trace else None,
        }
    ]
    rows += [
        {
            "connector": state.name,
            "part": f"task {t.id}",
            "state": t.state,
            "worker": t.worker_id,
            "cdc": None,
            "error": t.trace.strip().splitlines()[0] if t.trace else None,
        }
        for t in state.tasks
    ]
    return rows


def _cdc(client: ConnectClient, name: str) -> str | None:
    """``heartbeat 4s ago`` / ``STALE: heartbeat 312s ago`` / ``no heartbeat yet``
    (connectors/freshness.py); None when the connector has no heartbeat configured."""
    config = client.config(name) or {}
    if not config.get("heartbeat.interval.ms", "").strip():
        return None
    return describe(config, heartbeat_age(get_settings().kafka_bootstrap, heartbeat_topic(config)))


_STATE_COLUMNS = ["connector", "part", "state", "worker", "cdc", "error"]
_VIOLATION_COLUMNS = ["field", "problem", "fix", "origin"]


def _violation_rows(violations: list[Violation]) -> list[dict[str, str]]:
    return [
        {"field": v.field, "problem": v.problem, "fix": v.fix, "origin": v.origin}
        for v in violations
    ]


@app.command("list")
def list_(as_json: JsonOpt = False) -> None:
    """Connector templates of this repository, and whether Connect runs them."""
    registered: dict[str, str] = {}
    reachable = True
    try:
        with _client() as client:
            for name in client.connectors():
                state = client.status(name)
                registered[name] = state.state if state else "?"
    except StackError:
        reachable = False
    names = sorted(set(template_names()) | set(registered))
    rows = []
    for name in names:
        tpl = load_template(name).config if name in template_names() else {}
        rows.append(
            {
                "name": name,
                "class": tpl.get("connector.class", "").rsplit(".", 1)[-1] or None,
                "topic_prefix": tpl.get("topic.prefix"),
                "template": f"connectors/{name}.json" if tpl else None,
                "registered": registered.get(name, "no" if reachable else "connect unreachable"),
            }
        )
    emit_table(
        rows,
        ["name", "class", "topic_prefix", "template", "registered"],
        title="connectors",
        as_json=as_json,
    )


@app.command("render")
def render_(name: NameArg, as_json: JsonOpt = False) -> None:
    """The configuration Connect would receive (secrets stay ${provider:...} references)."""
    config = render(load_template(name), get_settings())
    if as_json:
        emit_json(config)
        return
    emit_table(
        [{"key": k, "value": v} for k, v in sorted(config.items())],
        ["key", "value"],
        title=f"connector {name}",
    )


@app.command("validate")
def validate_(
    name: NameArg,
    as_json: JsonOpt = False,
    offline: Annotated[
        bool, typer.Option("--offline", help="billsync's rules only, without Connect")
    ] = False,
) -> None:
    """billsync's rules and Connect's validate endpoint; exit 1 on any problem."""
    settings = get_settings()
    if offline:
        result = validate(name, settings, None)
    else:
        with _client() as client:
            result = validate(name, settings, client)
    if as_json:
        emit_json(
            {
                "name": name,
                "valid": result.ok,
                "connect_checked": result.connect_checked,
                "violations": _violation_rows(result.violations),
            }
        )
    elif result.ok:
        checked = "billsync rules and Connect" if result.connect_checked else "billsync rules"
        console.print(f"[green]connector {name} is valid[/] ({checked})")
    else:
        emit_table(
            _violation_rows(result.violations),
            _VIOLATION_COLUMNS,
            title=f"connector {name}: refused",
        )
    if not result.ok:
        raise typer.Exit(1)


@app.command("register")
def register_(name: NameArg, as_json: JsonOpt = False, timeout: TimeoutOpt = 180.0) -> None:
    """Validate, create or update (idempotent), and wait until connector and tasks RUN."""
    settings = get_settings()
    with (
        _client() as client,
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
        ) as progress,
    ):
        task = progress.add_task(f"validating {name}", total=None)

        def on_poll(_: str, state: ConnectorState | None) -> None:
            seen = "not visible yet" if state is None else _summary(state)
            progress.update(task, description=f"waiting for {name}: {seen}")

        try:
            result = register(name, settings, client, timeout_s=timeout, on_poll=on_poll)
        except ConnectorConfigInvalid as exc:
            progress.stop()
            if as_json:
                emit_json(
                    {
                        "name": name,
                        "registered": False,
                        "violations": _violation_rows(exc.violations),
                    }
                )
            else:
                emit_table(
                    _violation_rows(exc.violations),
                    _VIOLATION_COLUMNS,
                    title=f"connector {name}: refused, nothing registered",
                )
            raise typer.Exit(1) from None
    if as_json:
        emit_json(
            {
                "name": name,
                "registered": True,
                "created": result.created,
                "status": _state_rows(result.state),
            }
        )
        return
    verb = "created" if result.created else "updated (same name, config replaced)"
    console.print(f"[green]connector {name} {verb}; running[/]")
    emit_table(_state_rows(result.state), _STATE_COLUMNS)


def _summary(state: ConnectorState) -> str:
    tasks = ", ".join(f"task {t.id} {t.state}" for t in state.tasks) or "no tasks yet"
    return f"connector {state.state}, {tasks}"


@app.command("status")
def status(as_json: JsonOpt = False) -> None:
    """State of every registered connector and each of its tasks, and whether it streams.

    ``cdc`` is the age of the connector's newest Debezium heartbeat: Connect says RUNNING
    while a source connection is lost; ``STALE`` means no heartbeat for six intervals
    (at least 60 s) — restart it with `billsync connectors restart NAME`."""
    rows: list[dict[str, Any]] = []
    with _client() as client:
        for name in client.connectors():
            state = client.status(name)
            if state is not None:
                rows += _state_rows(state, _cdc(client, name))
    emit_table(rows, _STATE_COLUMNS, title="connectors", as_json=as_json)


@app.command("restart")
def restart(name: NameArg, as_json: JsonOpt = False, timeout: TimeoutOpt = 180.0) -> None:
    """Restart the connector and all its tasks, then wait until they RUN."""
    with _client() as client:
        if client.status(name) is None:
            raise StackError(
                f"connector {name}", "is not registered; use `billsync connectors register`"
            )
        client.restart(name)
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), console=err_console, transient=True
        ) as progress:
            task = progress.add_task(f"restarting {name}", total=None)

            def on_poll(_: str, state: ConnectorState | None) -> None:
                seen = "not visible" if state is None else _summary(state)
                progress.update(task, description=f"restarting {name}: {seen}")

            state = wait_running(client, name, timeout_s=timeout, on_poll=on_poll)
    emit_table(_state_rows(state), _STATE_COLUMNS, as_json=as_json)


@app.command("heal")
def heal_cmd(as_json: JsonOpt = False) -> None:
    """Restart every connector that is FAILED, or RUNNING with no heartbeat for six intervals
    (its stream is gone); resumes from the committed offsets. Safe to run from a timer."""
    with _client() as client:
        done = heal(client, get_settings().kafka_bootstrap)
    rows = [{"connector": h.connector, "restarted because": h.reason} for h in done]
    if as_json:
        emit_json(rows)
    elif rows:
        emit_table(rows, ["connector", "restarted because"], title="restarted")
    else:
        console.print("every connector runs and streams; nothing restarted")


@app.command("delete")
def delete(name: NameArg, as_json: JsonOpt = False) -> None:
    """Remove the connector from Connect (its PostgreSQL replication slot stays: see README)."""
    with _client() as client:
        existed = client.delete(name)
    if as_json:
        emit_json({"name": name, "deleted": existed})
        return
    if existed:
        console.print(f"connector {name} deleted (offsets kept; a PostgreSQL slot is kept too)")
    else:
        console.print(f"connector {name} was not registered; nothing to delete")
