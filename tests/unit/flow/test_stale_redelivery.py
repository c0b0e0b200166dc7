"""Old changes delivered again leave the ERP unchanged, through the whole flow (SPEC 4).

The engine-level property (``tests/unit/billing/test_stale_properties.py``) shows a stale
change emits nothing; here the same promise is checked where it is observed: Debezium Avro
records (with transaction metadata, :class:`ops.bench.debezium.Encoder`) through the
real flow into a SQLite ERP. A change older than what the flow already applied for its row
arrives again at a later offset of its topic — as ``billsync dlq replay`` produces it (the
one record, bytes untouched), as a Connect restart re-delivers it (the whole transaction,
with its BEGIN and END records), or as a snapshot read delivered again — and then a NEW
transaction follows. The ERP must equal that of the same stream without the re-delivery:
no ledger entry, no line state, no ``billing.transactions`` or ``billing.exceptions`` record
more; and the new transaction after it is billed (an ordering stage must not hold the old
change, or what follows it, waiting for a transaction that already ended).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from bytewax.connectors.kafka import KafkaSourceMessage
from bytewax.testing import TestingSource, run_main
from sqlalchemy import create_engine

from billsync.model import Account, Contract, ContractRate, Employee, Project, Row, Timesheet
from dataflows.billing.mappings import load_mappings
from dataflows.cdc.decoder import ChangeDecoder
from dataflows.flow import build_flow
from ops.bench.debezium import Encoder, Framed, source_of
from sinks.erp.sink import ErpSink
from tests.replay.erp import LEDGER, LINES, OUTBOX, payload, rows

D = Decimal
AT = datetime(2026, 3, 2, 9, tzinfo=UTC)
ACCOUNT = Account("A1", "Acme GmbH", "DE", "EUR", "CUST-1", AT)
CONTRACT = Contract("C1", "A1", "K-1", "time_and_materials", "active", "EUR", date(2026, 1, 1),
                    None, None, "month", None, AT)  # fmt: skip
RATE = ContractRate("R1", "C1", "CONSULTANT", D("120.00"), date(2026, 1, 1), None)
PROJECT = Project("P1", "P-1", "Rollout", "A1", "C1", "active", "DE01", AT)
EMPLOYEE = Employee("E1", "Ana", "ana@example.com", "CONSULTANT", "CC-10", "DE01", True, AT)
SUBMITTED = Timesheet(1, "E1", "P1", date(2026, 3, 2), D("8.00"), True, "submitted", None, None,
                      AT)  # fmt: skip
APPROVED = replace(SUBMITTED, status="approved", approved_at=AT)
CORRECTED = replace(APPROVED, hours=D("6.00"), notes="corrected")
ON_HOLD = replace(PROJECT, status="on_hold")
MOVED = replace(EMPLOYEE, cost_center="CC-20")
NEW = replace(APPROVED, timesheet_id=2, hours=D("4.00"))


class Stream:
    """Framed records of one history, named so a test can deliver some again."""

    def __init__(self) -> None:
        self.enc = Encoder(transactions=True)
        self.records: list[Framed] = []
        self.named: dict[str, list[Framed]] = {}

    def read(self, name: str, row: Row) -> None:
        """A snapshot read (no transaction)."""
        self._add(name, [self.enc.change("r", None, row)])

    def tx(self, name: str, *changes: tuple[str, Row | None, Row | None]) -> None:
        """One source transaction: BEGIN, its changes, END."""
        source = source_of(next(r for _, b, a in changes for r in (a, b) if r).TABLE)
        framed = [self.enc.begin(source)]
        framed += [self.enc.change(op, before, after) for op, before, after in changes]
        self._add(name, [*framed, self.enc.end(source)])

    def _add(self, name: str, framed: list[Framed]) -> None:
        self.named[name] = framed
        self.records += framed


def history() -> Stream:
    s = Stream()
    for name, row in (("account", ACCOUNT), ("contract", CONTRACT), ("rate", RATE),
                      ("project", PROJECT), ("employee", EMPLOYEE)):  # fmt: skip
        s.read(name, row)
    s.tx("submitted", ("c", None, SUBMITTED))
    s.tx("approved", ("u", SUBMITTED, APPROVED))
    s.tx("corrected", ("u", APPROVED, CORRECTED))
    s.tx("hold", ("u", PROJECT, ON_HOLD))
    s.tx("release", ("u", ON_HOLD, PROJECT))
    s.tx("moved", ("u", EMPLOYEE, MOVED))
    return s


def _changes_only(framed: list[Framed]) -> list[Framed]:
    """The data records of a transaction, without its BEGIN and END (a dead letter is one
    record)."""
    return [f for f in framed if not f.topic.endswith(".transaction")]


# (case, names delivered again, with their transaction records or not)
CASES = {
    "dlq replay of the approval (older than its correction)": (["approved"], False),
    "dlq replay of the creation (the line is approved since)": (["submitted"], False),
    "dlq replay of the hold (released since)": (["hold"], False),
    "a Connect restart re-delivers old transactions whole": (["approved", "hold"], True),
    "a snapshot read again (the employee moved since)": (["employee"], True),
}


def run(tmp_path: Path, name: str, records: list[Framed], schemas: Any) -> Path:
    offsets: dict[str, int] = {}
    messages = []
    for r in records:
        offset = offsets[r.topic] = offsets.get(r.topic, -1) + 1
        messages.append(KafkaSourceMessage(key=r.key, value=r.value, topic=r.topic,
                                           partition=0, offset=offset))  # fmt: skip
    db = tmp_path / f"{name}.sqlite3"
    url = f"sqlite:///{db}"
    flow = build_flow(
        TestingSource(messages, batch_size=4),
        decoder=lambda: ChangeDecoder(schemas),
        mappings=load_mappings(),
        erp_sink=ErpSink(lambda: create_engine(url)),
    )
    run_main(flow)  # type: ignore[no-untyped-call]  # bytewax leaves it unannotated
    return db


def erp(db: Path) -> dict[str, list[Any]]:
    """Ledger, line states, the billing outbox records and the dead letters of data records
    (those of ``<prefix>.transaction`` records aside: a flow that does not read them yet
    dead-letters them), wall clock left out."""
    outbox = rows(db, OUTBOX)
    return {
        "ledger": rows(db, LEDGER),
        "line state": rows(db, LINES),
        "outbox": [(r["topic"], r["key"], payload(r["payload"])) for r in outbox
                   if r["topic"] in ("billing.transactions", "billing.exceptions")],
        "dlq": [payload(r["payload"]) for r in outbox if r["topic"] == "billing.dlq"
                and not r["payload"].count(".transaction")],
    }  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_an_old_change_delivered_again_leaves_the_erp_unchanged(tmp_path: Path, case: str) -> None:
    names, whole = CASES[case]
    s = history()
    again = [f for n in names for f in (s.named[n] if whole else _changes_only(s.named[n]))]
    s.tx("new", ("c", None, NEW))  # after the re-delivery: it must still be billed
    before_new = len(s.records) - len(s.named["new"])
    plain = erp(run(tmp_path, "plain", s.records, s.enc.schemas))
    with_again = s.records[:before_new] + again + s.records[before_new:]
    redelivered = erp(run(tmp_path, "redelivered", with_again, s.enc.schemas))
    assert {(r["source_id"], r["entry_type"]) for r in plain["ledger"]} >= {("2", "charge")}, (
        "the history must bill the new line; the comparison would prove nothing"
    )
    assert redelivered == plain
