"""``billsync bench``: figures, not timed tests (see BENCHMARKS.md)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.progress import Progress

from billsync.errors import ConfigError
from billsync.settings import get_settings
from ops.bench.world import MONTH_EVENTS
from ops.console import console, emit_json, emit_table

app = typer.Typer(
    help="Benchmarks: core throughput, state size and resume, live latency, ERP batch time."
)

JSON = Annotated[bool, typer.Option("--json", help="print figures as JSON")]


def _say(as_json: bool) -> Any:
    return (lambda _m: None) if as_json else (lambda m: console.print(f"[dim]{m}[/]"))


def _sizes(events: list[int] | None, sizes: str | None) -> list[int]:
    """The stream sizes of `bench core`: every --events, and every size of --sizes."""
    out = list(events or [])
    for part in (sizes or "").split(","):
        part = part.strip().replace("_", "")
        if not part:
            continue
        if not part.isdigit() or int(part) < 100:
            raise ConfigError(
                f"--sizes: {part!r} is not a number of events >= 100",
                field="--sizes",
                fix="e.g. --sizes 20000,200000",
            )
        out.append(int(part))
    return sorted(set(out)) or [100_000]


def _counts(workers: str | None, option: str = "--workers") -> tuple[int, ...]:
    """The counts of --workers (or --shards), refused unless each is a whole number from 1
    to 64."""
    out = []
    what = option.lstrip("-")
    for part in (workers or "").split(","):
        part = part.strip()
        if not part:
            continue
        if not part.isdigit() or not 1 <= int(part) <= 64:
            raise ConfigError(
                f"{option}: {part!r} is not a number of {what} from 1 to 64",
                field=option,
                fix=f"e.g. {option} 1,2",
            )
        out.append(int(part))
    return tuple(out)


@app.command("core")
def core(
    events: Annotated[
        list[int] | None,
        typer.Option("--events", "-n", min=100, help="events; repeat for several sizes"),
    ] = None,
    sizes: Annotated[
        str | None, typer.Option(help="several sizes at once, e.g. 20000,200000")
    ] = None,
    seed: Annotated[int, typer.Option(help="seed of the synthetic stream")] = 7,
    flow: Annotated[bool, typer.Option(help="also run the Bytewax flow pass")] = True,
    closes: Annotated[
        bool, typer.Option(help="close each simulated month two months after it")
    ] = True,
    month_events: Annotated[
        int, typer.Option(min=100, help="events per simulated month")
    ] = MONTH_EVENTS,
    repeat: Annotated[
        int, typer.Option(min=1, help="with several sizes: rounds; each keeps its fastest")
    ] = 1,
    transactions: Annotated[
        bool,
        typer.Option(help="input with Debezium transaction metadata (BEGIN/END records too)"),
    ] = False,
    workers: Annotated[
        str | None,
        typer.Option(
            help="also the flow with a partition per source on each of these worker "
            "counts per process, e.g. 1,2"
        ),
    ] = None,
    processes: Annotated[int, typer.Option(min=1, help="processes of the --workers passes")] = 1,
    shards: Annotated[
        str | None,
        typer.Option(
            help="the --workers passes with the billing step in each of these shard counts, "
            "e.g. 1,2; and the engine alone, timed per shard"
        ),
    ] = None,
    window: Annotated[
        int, typer.Option(min=100, help="events per window of the per-window costs")
    ] = 20_000,
    as_json: JSON = False,
) -> None:
    """Synthetic Debezium Avro events: decode+billing vs the decode-only ceiling; with
    several sizes, the per-event cost of the largest over the smallest (target <= 1.25);
    with --workers, events/s of the flow on each worker count."""
    from ops.bench.core import Options, run_core, run_sizes

    wanted = _sizes(events, sizes)
    say = _say(as_json)
    opts = Options(
        seed=seed, flow=flow, month_events=month_events, closes=closes, transactions=transactions,
        workers=_counts(workers), processes=processes, shards=_counts(shards, "--shards"),
        window=window,
    )  # fmt: skip
    if len(wanted) == 1:
        result = run_core(wanted[0], opts, say)
        if as_json:
            emit_json(result)
            return
        cols = ["pass", "events", "seconds", "events_per_s", "us_per_event", "ratio_to_decode",
                "outputs", "lines_digest"]  # fmt: skip
        emit_table(result["passes"], cols, title=_core_title(result))
        return
    many = run_sizes(wanted, opts, say, repeat=repeat)
    if as_json:
        emit_json(many)
        return
    small, large = many["runs"][0], many["runs"][-1]
    rows = [
        {
            "pass": a["pass"],
            f"us/event @{small['events']}": a["us_per_event"],
            f"us/event @{large['events']}": b["us_per_event"],
            "ratio": many["cost_ratio"][a["pass"]],
        }
        for a, b in zip(small["passes"], large["passes"], strict=True)
    ]
    for run in many["runs"]:
        console.print(_core_title(run))
    steady = many["largest_windows"]
    w, end = steady["window"], large["events"]
    if steady["engine_us"]:
        emit_table(
            [
                {"window": f"{i * w:,}-{min((i + 1) * w, end):,}",
                 "decode us/event": d, "decode+billing us/event": b, "difference": e}
                for i, (d, b, e) in enumerate(
                    zip(steady["decode_us"], steady["billing_us"], steady["engine_us"], strict=True)
                )
            ],
            ["window", "decode us/event", "decode+billing us/event", "difference"],
            title=f"bench core: the {large['events']}-event run by window (difference, last "
            f"window over the second: {steady['engine_last_over_second']})",
        )  # fmt: skip
    verdict = "within" if many["within_goal"] else "OVER"
    emit_table(
        rows,
        list(rows[0]),
        title=f"bench core: per-event cost, {large['events']} vs {small['events']} events "
        f"(decode+billing {verdict} target {many['goal_ratio']})",
    )


def _core_title(run: dict[str, Any]) -> str:
    closes = f"closes through {run['closed_through']}" if run["closes"] else "no closes"
    return (
        f"bench core: {run['events']} events, a month every {run['month_events']}, {closes}; "
        f"{run['open_lines']} open lines, {run['final_lines']} final"
    )


@app.command("state")
def state(
    lines: Annotated[int, typer.Option("--lines", "-n", min=100)] = 100_000,
    open_lines: Annotated[
        int | None,
        typer.Option(
            "--open",
            min=1,
            help="lines left open: the rest are built as history and closed; also measures "
            "the all-open world of that many lines and prints the ratios",
        ),
    ] = None,
    as_json: JSON = False,
) -> None:
    """RSS, snapshot size and time, resume time: N lines all open, or N lines of which M
    open beside the all-open M-line baseline (target: every ratio <= 1.2)."""
    from ops.bench.state import run_state

    total = lines + (open_lines if open_lines is not None and open_lines < lines else 0)
    if as_json:
        emit_json(run_state(lines, open_lines))
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("building the engines", total=total)
        result = run_state(lines, open_lines, lambda k: bar.advance(task, k))
    if "worlds" not in result:
        rows = [{"figure": k, "value": v} for k, v in result.items()]
        emit_table(rows, ["figure", "value"], title=f"bench state: {lines} lines")
        return
    history, baseline = result["worlds"]
    rows = [
        {
            "figure": k,
            history["world"]: v,
            baseline["world"]: baseline[k],
            "ratio": result["ratios"].get(k, ""),
        }
        for k, v in history.items()
        if k != "world"
    ]
    verdict = "within" if all(result["within_goal"].values()) else "OVER"
    emit_table(
        rows,
        list(rows[0]),
        title=f"bench state: {lines} lines with {open_lines} open vs {open_lines} all open "
        f"({verdict} target {result['goal_ratio']}: "
        + ", ".join(f"{k} {'ok' if ok else 'OVER'}" for k, ok in result["within_goal"].items())
        + ")",
    )


class Source(StrEnum):
    psa = "psa"
    crm = "crm"


@app.command("e2e")
def e2e(
    rate: Annotated[
        int | None,
        typer.Option(
            "--rate",
            "-r",
            min=1,
            help="approvals (psa, default 200) or rate changes (crm, default 2) per second",
        ),
    ] = None,
    seconds: Annotated[float, typer.Option("--seconds", "-s", min=1)] = 20,
    source: Annotated[
        Source,
        typer.Option(
            help="psa: approvals, one line each; crm: one contract rate changed, "
            "which re-evaluates its lines"
        ),
    ] = Source.psa,
    keep: Annotated[bool, typer.Option(help="keep the inserted timesheets")] = False,
    contract: Annotated[
        str | None,
        typer.Option(help="crm: probe this contract (default: one of a billed line)"),
    ] = None,
    as_json: JSON = False,
) -> None:
    """Changes into a live source; commit-to-ERP latency. Needs `billsync run` running."""
    if source is Source.crm:
        from ops.bench.e2e_crm import run_crm_e2e

        rate = rate or 2
        result = run_crm_e2e(
            get_settings(), rate, seconds, keep=keep, contract=contract, say=_say(as_json)
        )
    else:
        from ops.bench.e2e import run_e2e

        if contract is not None:
            raise typer.BadParameter("only with --source crm", param_hint="--contract")
        rate = rate or 200
        result = run_e2e(get_settings(), rate, seconds, keep=keep, say=_say(as_json))
    if as_json:
        emit_json(result)
        return
    rows = [{"figure": k, "value": v} for k, v in result.items() if k != "targets"]
    title = f"bench e2e ({source.value}): {rate}/s for {seconds}s"
    emit_table(rows, ["figure", "value"], title=title)


@app.command("writer")
def writer(
    small: Annotated[int, typer.Option(min=2, help="ledger rows of the small ERP")] = 10_000,
    large: Annotated[int, typer.Option(min=2, help="ledger rows of the large ERP")] = 5_000_000,
    batch: Annotated[int, typer.Option(min=2, help="emissions per timed batch")] = 500,
    repeat: Annotated[int, typer.Option(min=1, help="timed batches per size")] = 5,
    on_erp: Annotated[
        bool,
        typer.Option(
            "--on-erp",
            help="use the PostgreSQL database of ERP_DB_URL (a throwaway schema) "
            "instead of SQLite in a temporary directory",
        ),
    ] = False,
    as_json: JSON = False,
) -> None:
    """ERP batch time with a small and a large ledger, and their ratio (target: <= 1.5)."""
    from ops.bench.writer import run_writer

    pg_url = None
    if on_erp:
        pg_url = get_settings().require("erp_db_url")
        if not pg_url.startswith("postgresql"):
            raise ConfigError(
                "--on-erp needs a PostgreSQL ERP",
                field="ERP_DB_URL",
                fix="point ERP_DB_URL at PostgreSQL, or leave --on-erp out (SQLite)",
            )
    if as_json:
        emit_json(run_writer(small, large, batch=batch, repeat=repeat, pg_url=pg_url))
        return
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("loading ledgers", total=small + large)
        result = run_writer(
            small,
            large,
            batch=batch,
            repeat=repeat,
            pg_url=pg_url,
            say=_say(as_json),
            progress=lambda n: bar.advance(task, n),
        )
    cols = ["ledger_rows", "batch", "batches", "median_ms", "max_ms", "load_s"]
    verdict = "within" if result["within_target"] else "OVER"
    emit_table(
        result["sizes"],
        cols,
        title=f"bench writer ({result['database']}): ratio {result['ratio']} "
        f"({verdict} target {result['target_ratio']})",
    )
