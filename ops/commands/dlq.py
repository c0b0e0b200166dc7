"""``billsync dlq``: the dead-letter topic — list what could not be read, replay what now can."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from billsync.settings import get_settings
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.cdc.schemas import RegistrySchemaSource
from ops.console import JsonOpt, emit_table, err_console
from ops.reads.topics import TopicReader, TopicRecord
from ops.run.runner import erp_engine
from ops.topics.replay import Replayer, replayed_positions
from sinks.erp.records import DLQ_TOPIC

app = typer.Typer(help="Dead letters (billing.dlq): list them, replay those whose cause is fixed.")

TopicOpt = Annotated[str, typer.Option(help="dead-letter topic")]


def _records(topic: str) -> list[TopicRecord]:
    settings = get_settings()
    with TopicReader(
        settings.kafka_bootstrap, settings.schema_registry_url, topic, key_avro=False
    ) as reader:
        return list(reader.read_to_end())


@app.command("list")
def list_(topic: TopicOpt = DLQ_TOPIC, as_json: JsonOpt = False) -> None:
    """Every dead letter: the error, where the record came from, its size, whether replayed."""
    settings = get_settings()
    done = replayed_positions(erp_engine(settings.require("erp_db_url")), topic)
    rows: list[dict[str, Any]] = []
    for rec in _records(topic):
        v = rec.value
        rows.append(
            {
                "dlq_offset": rec.offset,
                "error_type": v["error_type"],
                "topic": v["topic"],
                "partition": v["partition"],
                "offset": v["offset"],
                "size": len(v.get("value") or b""),
                "received_at": v["received_at"],
                "replayed": (rec.partition, rec.offset) in done,
                "error": v["error"] if as_json else v["error"][:80],
            }
        )
    emit_table(
        rows,
        (
            "dlq_offset",
            "error_type",
            "topic",
            "partition",
            "offset",
            "size",
            "replayed",
            "received_at",
            "error",
        ),
        title=f"{topic}: {len(rows)} dead letter(s)",
        as_json=as_json,
    )


@app.command()
def replay(
    offset: Annotated[
        list[int] | None, typer.Option("--offset", help="dead-letter offset (repeatable)")
    ] = None,
    replay_all: Annotated[bool, typer.Option("--all", help="every dead letter")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="decode only, publish nothing")] = (
        False
    ),
    topic: TopicOpt = DLQ_TOPIC,
    as_json: JsonOpt = False,
) -> None:
    """Re-decode dead letters with the edge; re-publish those that now decode to their original
    topic (bytes unchanged, header billsync-replay-of); refuse those that still fail.
    Exit 1 if any was refused."""
    if not offset and not replay_all:
        raise typer.BadParameter("name dead letters with --offset O (repeatable) or use --all")
    settings = get_settings()
    decoder = ChangeDecoder(RegistrySchemaSource(settings.schema_registry_url))
    erp = erp_engine(settings.require("erp_db_url"))
    replayer = Replayer(erp, decoder, settings.kafka_bootstrap)
    wanted = None if replay_all else set(offset or [])
    outcomes = replayer.run(_records(topic), offsets=wanted, dry_run=dry_run)
    if wanted is not None:
        missing = sorted(wanted - {o.dlq_offset for o in outcomes})
        if missing:
            err_console.print(f"[yellow]no dead letter at offset(s) {missing} of {topic}[/]")
    emit_table(
        [asdict(o) for o in outcomes],
        ("dlq_offset", "outcome", "topic", "partition", "offset", "error"),
        title=f"replay of {topic}" + (" (dry run)" if dry_run else ""),
        as_json=as_json,
    )
    if any(o.outcome == "refused" for o in outcomes):
        raise typer.Exit(1)
