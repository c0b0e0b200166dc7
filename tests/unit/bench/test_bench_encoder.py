"""The bench encoder writes transactional input the edge reads like the real connectors'
(``Encoder(transactions=True)``), and by default the bytes of a connector without it."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from typing import Any

from billsync.change import Change, TxMarker
from billsync.model import Contract, ContractRate, Project, Row, Timesheet
from dataflows.cdc.decoder import ChangeDecoder
from ops.bench.debezium import Encoder
from ops.bench.world import Scale, reference_rows

ROWS = reference_rows(Scale())


def _first(kind: type[Row]) -> Row:
    return next(r for r in ROWS if isinstance(r, kind))


def _decode(encoder: Encoder, records: list[Any]) -> list[Any]:
    decoder = ChangeDecoder(encoder.schemas)
    return [decoder.decode(r.topic, 0, i, r.key, r.value) for i, r in enumerate(records)]


def test_default_encoding_has_no_transaction_metadata() -> None:
    encoder = Encoder()
    assert all(
        "transaction" not in {f["name"] for f in encoder.schemas.fetch(i)["fields"]}
        for i in range(Encoder.FIRST_ID, Encoder.TX_SCHEMA_ID)
    )
    (change,) = _decode(encoder, [encoder.change("c", None, _first(Project))])
    assert change.tx is None and change.position.commit_lsn is None


def test_a_psa_transaction_over_two_tables() -> None:
    encoder = Encoder(transactions=True)
    project = _first(Project)
    held = dataclasses.replace(project, status="on_hold")
    sheet = Timesheet(1, "E0", project.key, date(2025, 3, 3), Decimal("8.00"), True, "approved",
                      None, None, project.updated_at)  # fmt: skip
    records = encoder.transaction("psa", [("u", project, held), ("c", None, sheet)])
    begin, update, insert, end = _decode(encoder, records)
    assert isinstance(begin, TxMarker) and isinstance(end, TxMarker)
    assert isinstance(update, Change) and isinstance(insert, Change)
    assert (begin.status, end.status) == ("BEGIN", "END")
    # Debezium's PostgreSQL ids differ per record ("xid:lsn"); the edge keeps the xid
    raw_ids = {r.key for r in records}
    assert len(raw_ids) == 4
    assert update.tx is not None and insert.tx is not None
    assert begin.id == end.id == update.tx.id == insert.tx.id
    assert [update.tx.total_order, insert.tx.total_order] == [1, 2]
    assert end.event_count == 2
    assert dict(end.collections) == {update.collection: 1, insert.collection: 1}
    # one commit LSN for the whole transaction, then the next one's is this END's LSN
    assert update.position.commit_lsn == insert.position.commit_lsn is not None
    after = _decode(encoder, encoder.transaction("psa", [("c", None, sheet)]))[1]
    assert after.position.commit_lsn > insert.position.lsn
    assert after.position.commit_order() > insert.position.commit_order()
    assert after.tx.id != update.tx.id


def test_a_crm_transaction_over_two_tables() -> None:
    encoder = Encoder(transactions=True)
    contract, rate = _first(Contract), _first(ContractRate)
    records = encoder.transaction("crm", [("c", None, contract), ("c", None, rate)])
    begin, first, second, end = _decode(encoder, records)
    assert begin.source == end.source == "crm"
    assert begin.id == end.id == first.tx.id == second.tx.id
    assert begin.id.startswith("0-1-")
    assert first.position.gtid == begin.id
    assert dict(end.collections) == {"crm.contracts": 1, "crm.contract_rates": 1}
    assert (first.collection, second.collection) == ("crm.contracts", "crm.contract_rates")


def test_a_change_outside_a_transaction_carries_none() -> None:
    encoder = Encoder(transactions=True)
    (change,) = _decode(encoder, [encoder.change("r", None, _first(Contract))])
    assert change.tx is None
