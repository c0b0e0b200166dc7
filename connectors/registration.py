"""Validate and register connectors: billsync's rules, then Connect's, then PUT and wait.

Nothing is registered unless both validations pass. Registration is idempotent
(``PUT /connectors/NAME/config`` creates or updates) and ends only when the connector and
all its tasks are RUNNING, or fails with the task's own error message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from billsync.errors import ConfigError, StackError
from billsync.settings import Settings
from connectors import rules
from connectors.connect_client import ConnectClient, ConnectorState, FieldError
from connectors.rules import Violation
from connectors.source_checks import check_source
from connectors.templates import TEMPLATE_DIR, load_template, render, template_names


class ConnectorConfigInvalid(ConfigError):
    """A connector configuration was refused; ``violations`` lists every field and its fix."""

    def __init__(self, name: str, violations: list[Violation]) -> None:
        self.name = name
        self.violations = violations
        first = violations[0]
        lines = "; ".join(f"{v.field}: {v.problem}" for v in violations)
        super().__init__(
            f"connector {name} refused, nothing registered ({len(violations)} problem(s): {lines})",
            field=first.field,
            fix=first.fix,
        )


def _is_auth_error(message: str) -> bool:
    msg = message.lower()
    return "password" in msg or "access denied" in msg or "authentication" in msg


def _connect_fix(name: str, error: FieldError, config: Mapping[str, str]) -> str:
    """A fix for an error reported by Connect / Debezium, from what the message says."""
    msg = error.message.lower()
    if _is_auth_error(error.message):
        ref = config.get("database.password", "")
        return (
            f"check database.user ({config.get('database.user', '?')}) and the password that "
            f"Connect resolves from {ref or 'database.password'} (Connect's environment; "
            "restart Connect after changing it)"
        )
    if "connection refused" in msg or "unknownhost" in msg or "communications link" in msg:
        return "check database.hostname / database.port: is the source database running there?"
    if "slot" in msg:
        return "check slot.name (unique per connector) and the max_replication_slots of PostgreSQL"
    if "publication" in msg:
        return "create the publication (the stack does) or check publication.name"
    if "replication" in msg or "binlog" in msg or "privilege" in msg:
        return "grant the Debezium user its replication privileges (see connectors/README.md)"
    return f"correct {error.field} in connectors/{name}.json"


def _connect_violations(
    name: str, errors: list[FieldError], config: Mapping[str, str]
) -> list[Violation]:
    """Connect's errors as violations. Debezium reports a failed login on database.hostname;
    it is named database.password here, the field to fix."""
    return [
        Violation(
            "database.password" if _is_auth_error(e.message) else (e.field or "(connector)"),
            e.message,
            _connect_fix(name, e, config),
            origin="connect",
        )
        for e in errors
    ]


def raw_templates(directory: Path = TEMPLATE_DIR) -> dict[str, dict[str, str]]:
    """Every template's unrendered config, for the cross-template uniqueness rules."""
    return {n: load_template(n, directory).config for n in template_names(directory)}


@dataclass(frozen=True)
class Validation:
    name: str
    config: dict[str, str]
    violations: list[Violation]
    connect_checked: bool

    @property
    def ok(self) -> bool:
        return not self.violations


def validate(
    name: str,
    settings: Settings,
    client: ConnectClient | None,
    *,
    directory: Path = TEMPLATE_DIR,
) -> Validation:
    """Render ``name`` and check it: billsync's rules, Connect's validate endpoint, the source.

    ``client=None`` checks billsync's rules only (no service needed).
    """
    config = render(load_template(name, directory), settings)
    return validate_config(name, config, client, others=raw_templates(directory), settings=settings)


def validate_config(
    name: str,
    config: Mapping[str, str],
    client: ConnectClient | None,
    *,
    others: Mapping[str, Mapping[str, str]] | None = None,
    settings: Settings | None = None,
) -> Validation:
    """Check an already rendered configuration (see :func:`validate`).

    With a client, Connect validates too; with settings as well, the source database is
    checked live (tables exist, the Debezium user may write heartbeat and signal tables).
    """
    violations = rules.check(name, config, others)
    checked = False
    # Connect's endpoint needs a connector class it knows; an unsupported one is already refused.
    if client is not None and config.get("connector.class") in rules.SUPPORTED_CLASSES:
        violations += _connect_violations(name, client.validate(config), config)
        checked = True
        if settings is not None:
            violations += check_source(config, settings)
    return Validation(name, dict(config), violations, checked)


Progress = Callable[[str, ConnectorState | None], None]


def wait_running(
    client: ConnectClient,
    name: str,
    *,
    timeout_s: float = 120.0,
    poll_s: float = 1.0,
    on_poll: Progress | None = None,
) -> ConnectorState:
    """Poll the status until the connector and all its tasks are RUNNING; fail on FAILED."""
    deadline = time.monotonic() + timeout_s
    state: ConnectorState | None = None
    while True:
        state = client.status(name)
        if on_poll is not None:
            on_poll(name, state)
        if state is not None and state.running:
            return state
        if state is not None and state.failed:
            raise StackError(
                f"connector {name}",
                f"FAILED: {state.first_trace() or 'no trace'}; see `billsync connectors status` "
                f"and the Connect log, fix the cause, then `billsync connectors restart {name}`",
            )
        if time.monotonic() >= deadline:
            seen = "not registered" if state is None else _describe(state)
            raise StackError(
                f"connector {name}",
                f"not RUNNING after {timeout_s:.0f}s ({seen}); see `billsync connectors status`",
            )
        time.sleep(poll_s)


def _describe(state: ConnectorState) -> str:
    tasks = ", ".join(f"task {t.id} {t.state}" for t in state.tasks) or "no tasks yet"
    return f"connector {state.state}, {tasks}"


@dataclass(frozen=True)
class Registration:
    name: str
    created: bool
    state: ConnectorState


def register(
    name: str,
    settings: Settings,
    client: ConnectClient,
    *,
    directory: Path = TEMPLATE_DIR,
    timeout_s: float = 120.0,
    on_poll: Progress | None = None,
) -> Registration:
    """Validate, then create or update ``name`` and wait until it runs.

    Raises :class:`ConnectorConfigInvalid` (nothing registered) when validation fails.
    """
    result = validate(name, settings, client, directory=directory)
    if not result.ok:
        raise ConnectorConfigInvalid(name, result.violations)
    created = client.put_config(name, result.config)
    state = wait_running(client, name, timeout_s=timeout_s, on_poll=on_poll)
    return Registration(name=name, created=created, state=state)
