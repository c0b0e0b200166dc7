"""Everything the dashboard shows, as one plain dict (also served as ``/api/summary``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, func, select

from ops.reads.queries import audit_runs, figures, queue
from ops.reads.queries.tables import dlq_replays, ensure


def flow_metrics(metrics_url: str | None) -> dict[str, Any]:
    """Lag per topic, commit-to-ERP latency and the DLQ depth from the flow's /metrics."""
    out: dict[str, Any] = {"reachable": False, "url": metrics_url, "lag": {}}
    if not metrics_url:
        return out
    try:
        body = httpx.get(metrics_url, timeout=2.0).text
    except httpx.HTTPError as exc:
        out["error"] = exc.__class__.__name__
        return out
    out["reachable"] = True
    lag: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    count = total = 0.0
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            if s.name == "bytewax_kafka_consumer_lag":
                topic = s.labels.get("topic", "?")
                lag[topic] = lag.get(topic, 0.0) + s.value
            elif s.name == "billsync_commit_to_erp_seconds_bucket":
                le = s.labels["le"]
                buckets.append((float("inf") if le == "+Inf" else float(le), s.value))
            elif s.name == "billsync_commit_to_erp_seconds_count":
                count = s.value
            elif s.name == "billsync_commit_to_erp_seconds_sum":
                total = s.value
            elif s.name == "billsync_dlq_depth":
                out["dlq_depth"] = int(s.value)
    out["lag"] = {k: int(v) for k, v in sorted(lag.items())}
    out["latency"] = {
        "count": int(count),
        "mean_s": round(total / count, 3) if count else None,
        "p95_le_s": _quantile_bound(sorted(buckets), count, 0.95),
    }
    return out


def _quantile_bound(buckets: list[tuple[float, float]], count: float, q: float) -> float | None:
    """The upper bound of the histogram bucket holding the q-quantile (None: no data)."""
    if not count:
        return None
    for le, cumulative in buckets:
        if cumulative >= q * count:
            return None if le == float("inf") else le
    return None


def summary(
    engine: Engine,
    metrics_url: str | None = None,
    dlq_size: Callable[[], int | None] | None = None,
) -> dict[str, Any]:
    """``dlq_size``: records in billing.dlq (from the broker); without it, the flow's gauge."""
    ensure(engine)
    with engine.connect() as conn:
        holds = [asdict(r) for r in queue.holds_by_reason(conn)]
        periods = [asdict(p) for p in figures.by_period(figures.snapshot_rows(conn))]
        last = audit_runs.last(conn)
        replayed = conn.execute(select(func.count()).select_from(dlq_replays)).scalar_one()
    flow = flow_metrics(metrics_url)
    size = dlq_size() if dlq_size is not None else None
    depth = max(0, size - int(replayed)) if size is not None else flow.get("dlq_depth")
    return {
        "generated_at": datetime.now(UTC),
        "holds_by_reason": holds,
        "queue_lines": sum(h["lines"] for h in holds),
        "periods": periods,
        "audit": asdict(last) if last is not None else None,
        "dlq": {"depth": depth, "replayed": int(replayed)},
        "flow": flow,
    }
