"""``billsync schemas``: register the Avro schemas of billsync's topics, check compatibility.

Subjects are ``<topic>-value`` (and ``<topic>-key``, Avro string, for keyed topics); each is
held at BACKWARD compatibility. ``check`` asks the registry whether every local schema may
follow what is registered and exits 1, naming subject and incompatibility, if one may not;
``register`` runs the same check first and registers nothing when it fails.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from billsync.errors import ConfigError
from billsync.settings import get_settings
from ops.console import JsonOpt, emit_table, err_console
from schemas.client import Compatibility, RegistryClient
from schemas.compat import backward_problems
from schemas.registry import COMPATIBILITY, TOPICS, Subject, subjects

app = typer.Typer(
    help="Avro schemas of billsync's topics: register them, check BACKWARD compatibility.",
    no_args_is_help=True,
)

TopicOpt = Annotated[
    list[str] | None, typer.Option("--topic", help=f"only these topics ({', '.join(TOPICS)})")
]
SubjectOpt = Annotated[
    str | None, typer.Option("--subject", help="with --file: the subject to check against")
]
FileOpt = Annotated[
    Path | None, typer.Option("--file", help="with --subject: an .avsc file to check instead")
]


def _selected(topics: list[str] | None, subject: str | None, file: Path | None) -> list[Subject]:
    if (subject is None) != (file is None):
        raise ConfigError(
            "--subject and --file go together",
            field="--subject/--file",
            fix="pass both (check one file against one subject) or neither",
        )
    if subject is not None and file is not None:
        try:
            text = json.dumps(json.loads(file.read_text(encoding="utf-8")), separators=(",", ":"))
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read {file}: {exc}", field="--file", fix="a JSON .avsc file"
            ) from None
        return [Subject(subject, subject.removesuffix("-value"), "value", text)]
    return subjects(tuple(topics) if topics else TOPICS)


def _explain(client: RegistryClient, subject: Subject, result: Compatibility) -> str:
    """The registry's messages, or our own resolution check against the registered schema."""
    if result.messages:
        return "; ".join(result.messages)
    problems = backward_problems(
        json.loads(subject.schema), json.loads(client.latest_schema(subject.name))
    )
    return "; ".join(problems) or "the registry reports it incompatible (no detail given)"


def _check(client: RegistryClient, chosen: list[Subject]) -> list[dict[str, Any]]:
    rows = []
    for subject in chosen:
        result = client.check(subject.name, subject.schema)
        rows.append(
            {
                "subject": subject.name,
                "registered": result.registered,
                "compatible": result.compatible,
                "detail": "" if result.compatible else _explain(client, subject, result),
            }
        )
    return rows


def _refuse(rows: list[dict[str, Any]]) -> None:
    broken = [r for r in rows if not r["compatible"]]
    if broken:
        detail = " | ".join(f"{r['subject']}: {r['detail']}" for r in broken)
        raise ConfigError(
            f"{len(broken)} schema change(s) break {COMPATIBILITY} compatibility — {detail}",
            field=", ".join(r["subject"] for r in broken),
            fix="give new fields a default, keep types (and decimal precision/scale), or "
            "publish a new topic/subject version instead of changing this one",
        )


@app.command()
def check(
    topic: TopicOpt = None,
    subject: SubjectOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Ask the registry whether each local schema may follow the registered one (BACKWARD)."""
    chosen = _selected(topic, subject, file)
    with RegistryClient(get_settings().schema_registry_url) as client:
        rows = _check(client, chosen)
    emit_table(
        rows,
        ["subject", "registered", "compatible", "detail"],
        title="schema compatibility",
        as_json=as_json,
    )
    _refuse(rows)


@app.command()
def register(
    topic: TopicOpt = None,
    subject: SubjectOpt = None,
    file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Register every schema (idempotent) and hold each subject at BACKWARD compatibility."""
    chosen = _selected(topic, subject, file)
    rows = []
    with RegistryClient(get_settings().schema_registry_url) as client:
        _refuse(_check(client, chosen))
        for s in chosen:
            registered = client.register(s.name, s.schema)
            if client.get_compatibility(s.name) != COMPATIBILITY:
                client.set_compatibility(s.name, COMPATIBILITY)
            rows.append(
                {
                    "subject": s.name,
                    "topic": s.topic,
                    "kind": s.kind,
                    "id": registered.id,
                    "version": registered.version,
                    "compatibility": client.get_compatibility(s.name),
                }
            )
    emit_table(
        rows,
        ["subject", "topic", "kind", "id", "version", "compatibility"],
        title="registered schemas",
        as_json=as_json,
    )
    if not as_json:
        err_console.print(f"{len(rows)} subjects registered at {COMPATIBILITY}")
