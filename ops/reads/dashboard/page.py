"""The dashboard page: server-rendered HTML with inline SVG bar charts (no JavaScript)."""

from __future__ import annotations

from decimal import Decimal
from html import escape
from typing import Any

COLORS = {"held": "#d97706", "partially_held": "#f59e0b", "exception": "#dc2626"}
BILLED, HELD = "#2563eb", "#d97706"


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def _money(value: Decimal) -> str:
    return f"{value:,.2f}"


def _label(h: dict[str, Any]) -> str:
    return f"{h['reason']} (partial)" if h["state"] == "partially_held" else str(h["reason"])


def holds_chart(holds: list[dict[str, Any]], width: int = 560) -> str:
    """Horizontal bars: lines per (state, reason)."""
    if not holds:
        return '<p class="empty">No line is held or in exception.</p>'
    bar_h, gap, label_w = 22, 6, 250
    top = max(h["lines"] for h in holds)
    height = len(holds) * (bar_h + gap)
    parts = [
        f'<svg class="chart" id="holds-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="lines held by reason">'
    ]
    for i, h in enumerate(holds):
        y = i * (bar_h + gap)
        w = max(2, int((width - label_w - 60) * h["lines"] / top))
        color = COLORS.get(h["state"], "#6b7280")
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end">{_e(_label(h))}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{color}">'
            f"<title>{_e(h['state'])} {_e(h['reason'])}: {h['lines']} line(s)</title></rect>"
            f'<text x="{label_w + w + 6}" y="{y + 15}">{h["lines"]}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def periods_chart(periods: list[dict[str, Any]], width: int = 760, height: int = 260) -> str:
    """Grouped vertical bars per period: billed (ledger) and held (cap) amounts."""
    if not periods:
        return '<p class="empty">No reconciliation snapshot yet.</p>'
    base, left = height - 40, 100
    top = max(max(p["billed_amount"], p["held_amount"]) for p in periods) or Decimal(1)
    slot = (width - left - 10) / len(periods)
    bar = max(3.0, min(28.0, slot / 2 - 4))
    parts = [
        f'<svg class="chart" id="periods-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="billed and held by period">',
        f'<line x1="{left}" y1="{base}" x2="{width - 5}" y2="{base}" stroke="#9ca3af"/>',
        f'<text x="{left - 6}" y="14" text-anchor="end">{_money(top)}</text>',
        f'<text x="{left - 6}" y="{base}" text-anchor="end">0</text>',
    ]
    for i, p in enumerate(periods):
        x = left + i * slot + slot / 2
        for j, (field, color) in enumerate((("billed_amount", BILLED), ("held_amount", HELD))):
            h = int((base - 20) * p[field] / top)  # whole pixels; amounts stay Decimal
            parts.append(
                f'<rect x="{x - bar + j * bar:.1f}" y="{base - h:.1f}" width="{bar - 1:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{_e(p["period"])} {field}: '
                f"{_money(p[field])}</title></rect>"
            )
        if len(periods) <= 24 or i % max(1, len(periods) // 12) == 0:
            parts.append(
                f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle">{_e(p["period"])}</text>'
            )
    parts.append(
        f'<rect x="{left}" y="{height - 14}" width="10" height="10" fill="{BILLED}"/>'
        f'<text x="{left + 14}" y="{height - 5}">billed</text>'
        f'<rect x="{left + 70}" y="{height - 14}" width="10" height="10" fill="{HELD}"/>'
        f'<text x="{left + 84}" y="{height - 5}">held by cap</text></svg>'
    )
    return "".join(parts)


def _card(label: str, value: Any, cls: str = "") -> str:
    return (
        f'<div class="card {cls}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(value)}</div></div>'
    )


def _table(rows: list[dict[str, Any]], columns: tuple[str, ...], table_id: str) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{_e(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows
    )
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#111827;background:#f9fafb}
h1{font-size:22px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.sub{color:#6b7280;font-size:13px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin-top:16px}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 14px;min-width:150px}
.card .label{font-size:12px;color:#6b7280}.card .value{font-size:22px;font-weight:600}
.card.bad .value{color:#dc2626}.card.good .value{color:#059669}
.panel{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 16px;
 margin-top:12px}
.chart text{font-size:12px;fill:#374151}
table{border-collapse:collapse;font-size:13px}
td,th{border-bottom:1px solid #e5e7eb;padding:4px 10px;text-align:left}
.empty{color:#6b7280}
"""


def _latency_text(latency: dict[str, Any]) -> str:
    if not latency.get("count"):
        return "n/a"
    p95 = latency["p95_le_s"]
    return f"mean {latency['mean_s']}s, p95 " + (f"≤ {p95}s" if p95 is not None else "> 300s")


def render(s: dict[str, Any]) -> str:
    audit = s.get("audit")
    flow = s["flow"]
    lag_total = sum(flow["lag"].values()) if flow["reachable"] else None
    latency = flow.get("latency") or {}
    drift = audit["differences"] if audit else "never run"
    depth = s["dlq"]["depth"]
    cards = "".join(
        [
            _card("lines in exception queue", s["queue_lines"]),
            _card("DLQ depth", "n/a" if depth is None else depth, "bad" if depth else "good"),
            _card("last audit drift", drift, "bad" if audit and drift else "good"),
            _card("consumer lag (records)", "n/a" if lag_total is None else lag_total),
            _card(
                "commit→ERP latency",
                _latency_text(latency),
            ),
        ]
    )
    holds_rows = [
        {**h, **{k: _money(h[k]) for k in ("billable_amount", "held_amount")}}
        for h in s["holds_by_reason"]
    ]
    period_rows = [
        {**p, **{k: _money(p[k]) for k in ("billed_amount", "tax_amount", "held_amount")}}
        for p in s["periods"]
    ]
    lag_rows = [{"topic": k, "lag": v} for k, v in flow["lag"].items()]
    audit_line = (
        f"last audit {audit['run_at']:%Y-%m-%d %H:%M:%S} UTC over {audit['lines']} lines"
        if audit
        else "no audit run yet: billsync recon audit"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>billsync dashboard</title>
<meta http-equiv="refresh" content="30"><style>{CSS}</style></head><body>
<h1>billsync</h1>
<div class="sub">generated {s["generated_at"]:%Y-%m-%d %H:%M:%S} UTC · {_e(audit_line)} ·
flow metrics {"at " + _e(flow["url"]) if flow["reachable"] else "not reachable"}</div>
<div class="cards">{cards}</div>
<div class="panel"><h2>Holds and exceptions by reason</h2>{holds_chart(s["holds_by_reason"])}
{_table(holds_rows, ("state", "reason", "lines", "billable_amount", "held_amount"), "holds")}</div>
<div class="panel"><h2>Billed and held by period</h2>{periods_chart(s["periods"])}
{
        _table(
            period_rows,
            (
                "period",
                "billed_amount",
                "tax_amount",
                "held_amount",
                "held_count",
                "exception_count",
            ),
            "periods",
        )
    }</div>
<div class="panel"><h2>Consumer lag by topic</h2>
{_table(lag_rows, ("topic", "lag"), "lag") if lag_rows else '<p class="empty">no lag data</p>'}
</div></body></html>
"""
