"""Field docs of the topic schemas say what the code writes (found in review: they did not).

- ``billing.transactions.hours`` claimed "negative on reversals"; the ledger never negates
  hours (the sign of an entry is in its amounts), and a reversal carries the hours last
  posted (it is posted under the posted dimensions).
- ``billing.dlq.timestamp`` claimed the original record's Kafka timestamp; it is when the
  edge dead-lettered the record. ``received_at`` is when the ERP sink wrote the letter.
Each test runs the code, then checks the doc states that behaviour.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
import pytest
from sqlalchemy import create_engine, select

from billsync.errors import RecordContext, RecordError
from dataflows.billing.target import LineTarget, LineUpdate, SourceType, State
from dataflows.cdc.deadletter import dead_letter
from dataflows.emissions import Emission
from schemas.registry import schema_str
from sinks.erp import tables as t
from sinks.erp.sink import _ErpPartition
from sinks.erp.writer import ErpWriter

NOW = datetime(2026, 4, 1, tzinfo=UTC)
D = Decimal


def _doc(topic: str, field: str) -> str:
    fields = json.loads(schema_str(topic))["fields"]
    return str(next(f for f in fields if f["name"] == field)["doc"])


def _line(state: State = State.BILLED, billed: str = "960.00", **kw: object) -> LineTarget:
    base: dict[str, object] = dict(
        source_type=SourceType.TIMESHEET, source_id="7", state=state, reason=None,
        contract_id="C1", project_id="P1", period="2026-03", billable_amount=D(billed),
        billed_amount=D(billed), tax_amount=D(billed) * D("0.20"), currency="EUR",
        hours=D("8.00"), rate=D("120.00"), billable=True, work_date=date(2026, 3, 2),
    )  # fmt: skip
    base.update(kw)
    return LineTarget(**base)  # type: ignore[arg-type]


# (what happens to the charged line, its new target, hours on the reversal)
REVERSALS = [
    ("unapproved", None, "8.00"),
    ("held, hours now 9", _line(State.HELD, "0.00", reason="PROJECT_ON_HOLD", hours=D("9.00")),
     "8.00"),
    ("moved to another period, hours now 9", _line(period="2026-04", hours=D("9.00")), "8.00"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "new", "hours"), REVERSALS, ids=[r[0] for r in REVERSALS])
def test_hours_on_a_reversal_are_not_negated_and_the_doc_says_so(
    what: str, new: LineTarget | None, hours: str
) -> None:
    engine = create_engine("sqlite://")
    writer = ErpWriter(engine, clock=lambda: NOW)
    writer.ensure_schema()
    key = ("timesheet", "7")
    writer.apply([Emission(LineUpdate(key, None, _line()), "p1")])
    writer.apply([Emission(LineUpdate(key, _line(), new), "p2")])
    with engine.connect() as conn:
        o = t.billing_outbox
        payloads = conn.execute(select(o.c.payload).where(o.c.topic == "billing.transactions"))
        records = [orjson.loads(p) for p in payloads.scalars()]
    engine.dispose()
    [reversal] = [r for r in records if r["entry_type"] == "reversal"]
    assert D(reversal["amount"]) == D("-960.00")
    assert reversal["hours"] == hours
    doc = _doc("billing.transactions", "hours")
    assert "negative on reversals" not in doc
    assert "never negated, on reversals too" in doc and "not a delta" in doc
    assert "hours last posted" in doc and "whatever the line's hours are now" in doc


def test_dlq_timestamp_is_when_the_edge_dead_lettered_and_the_doc_says_so() -> None:
    ctx = RecordContext(topic="psa.public.timesheets", partition=0, offset=5, value=b"\x07")
    letter = dead_letter(RecordError("bad framing", ctx), now_ms=1_775_000_000_000)
    assert letter["timestamp"] == 1_775_000_000_000  # the dead-lettering clock; no Kafka ts
    doc = _doc("billing.dlq", "timestamp")
    assert "Kafka timestamp of the original record (ms" not in doc
    assert "dead-lettered the record" in doc and "Not the Kafka timestamp" in doc


def test_dlq_received_at_is_the_erp_sinks_clock_and_the_doc_says_so() -> None:
    engine = create_engine("sqlite://")
    part = _ErpPartition(engine, None, 3600.0, lambda: NOW)
    ctx = RecordContext(topic="psa.public.timesheets", partition=0, offset=5, value=b"\x07")
    part.write_batch([dead_letter(RecordError("bad framing", ctx), now_ms=1)])
    with engine.connect() as conn:
        [payload] = conn.execute(select(t.billing_outbox.c.payload)).scalars()
    engine.dispose()
    assert orjson.loads(payload)["received_at"] == NOW.isoformat()
    doc = _doc("billing.dlq", "received_at")
    assert "ERP sink wrote the dead letter into billing_outbox" in doc
