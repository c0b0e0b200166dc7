"""``recon audit``'s order check: per item and source, ledger positions never go backwards."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, insert

from ops.reads.audit.positions import PositionRegression, check, position_regressions
from sinks.erp import tables as t
from sinks.erp.writer import ErpWriter

from .test_erp_writer import em, target

NOW = datetime(2026, 4, 1, tzinfo=UTC)
BIN1 = "crm:mariadb-bin.000001"


def rows(*entries: tuple[str, int, str | None]) -> list[dict[str, Any]]:
    """Ledger rows of items ``timesheet:<id>``: (source_id, seq, source_position)."""
    return [
        {"source_type": "timesheet", "source_id": sid, "seq": seq, "source_position": pos}
        for sid, seq, pos in entries
    ]


def found(*entries: tuple[str, int, str | None]) -> list[tuple[str, str, int, int]]:
    return [(r.item, r.source, r.previous_seq, r.seq) for r in position_regressions(rows(*entries))]


CASES: dict[str, tuple[list[tuple[str, int, str | None]], list[tuple[str, str, int, int]]]] = {
    "forward in lsn": (
        [("1", 0, "psa:lsn=100:tx=1:commit=100"), ("1", 1, "psa:lsn=200:tx=2:commit=200")],
        [],
    ),
    "backwards in lsn": (
        [("1", 0, "psa:lsn=200:tx=2:commit=200"), ("1", 1, "psa:lsn=100:tx=1:commit=100")],
        [("timesheet:1", "psa", 0, 1)],
    ),
    "one change posting two entries (same position)": (
        [("1", 0, "psa:lsn=100:tx=1:commit=100"), ("1", 1, "psa:lsn=100:tx=1:commit=100")],
        [],
    ),
    # the transaction that began first (lower LSN) committed last: commit order decides
    "lower lsn, later commit: forward": (
        [("1", 0, "psa:lsn=200:tx=8:commit=250"), ("1", 1, "psa:lsn=100:tx=7:commit=300")],
        [],
    ),
    "higher lsn, earlier commit: backwards": (
        [("1", 0, "psa:lsn=100:tx=7:commit=300"), ("1", 1, "psa:lsn=200:tx=8:commit=250")],
        [("timesheet:1", "psa", 0, 1)],
    ),
    "binlog row within one event": (
        [("1", 0, f"{BIN1}:400:row=1"), ("1", 1, f"{BIN1}:400:row=0")],
        [("timesheet:1", "crm", 0, 1)],
    ),
    "binlog file number beats position": (
        [("1", 0, "crm:mariadb-bin.000001:9000:row=0"), ("1", 1, "crm:mariadb-bin.000002:4:row=0")],
        [],
    ),
    "sources are never compared with each other": (
        [("1", 0, "psa:lsn=900:tx=9:commit=900"), ("1", 1, "crm:mariadb-bin.000001:4:row=0"),
         ("1", 2, "erp:lsn=10:tx=1:commit=10"), ("1", 3, "psa:lsn=901:tx=9:commit=901")],
        [],
    ),
    "non-source positions are skipped": (
        [("1", 0, "psa:lsn=500:tx=5:commit=500"), ("1", 1, "mappings-changed"), ("1", 2, None),
         ("1", 3, "psa:lsn=600:tx=6:commit=600")],
        [],
    ),
    "compared with the newest so far, not just the previous entry": (
        [("1", 0, "psa:lsn=500:tx=5:commit=500"), ("1", 1, "psa:lsn=100:tx=1:commit=100"),
         ("1", 2, "psa:lsn=200:tx=2:commit=200"), ("1", 3, "psa:lsn=700:tx=7:commit=700")],
        [("timesheet:1", "psa", 0, 1), ("timesheet:1", "psa", 0, 2)],
    ),
    # read at a point of the stream, not committed in it (a re-snapshot after a reopen), or
    # written before commit LSNs were recorded: not in the commit order, skipped
    "PostgreSQL positions without a commit LSN are skipped": (
        [("1", 0, "psa:lsn=500:tx=5:commit=500"), ("1", 1, "psa:lsn=100:tx=1"),
         ("1", 2, "psa:lsn=600:tx=6:commit=600")],
        [],
    ),
    "items are never compared with each other": (
        [("1", 0, "psa:lsn=500:tx=5:commit=500"), ("2", 0, "psa:lsn=100:tx=1:commit=100")],
        [],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", CASES)
def test_position_regressions(name: str) -> None:
    entries, want = CASES[name]
    assert found(*entries) == want


def test_a_regression_names_both_positions() -> None:
    (r,) = position_regressions(
        rows(
            ("7", 3, "crm:mariadb-bin.000001:900:row=0"), ("7", 4, "crm:mariadb-bin.000001:4:row=0")
        )
    )
    assert r == PositionRegression(
        item="timesheet:7",
        source="crm",
        previous_seq=3,
        previous="crm:mariadb-bin.000001:900:row=0",
        seq=4,
        position="crm:mariadb-bin.000001:4:row=0",
    )


def erp() -> tuple[Engine, ErpWriter]:
    writer = ErpWriter(engine := create_engine("sqlite://"), clock=lambda: NOW)
    writer.ensure_schema()
    return engine, writer


def test_a_ledger_written_out_of_commit_order_is_found() -> None:
    """The writer posts what it is given: a stale change applied after a newer one shows."""
    db, writer = erp()
    writer.apply([em(target("960.00"), "psa:lsn=300:tx=3:commit=300")])
    writer.apply([em(target("480.00"), "psa:lsn=200:tx=2:commit=200")])  # older, applied later
    writer.apply([em(target("240.00"), "psa:lsn=400:tx=4:commit=400")])
    with db.connect() as conn:
        assert [(r.previous, r.seq, r.position) for r in check(conn)] == [
            ("psa:lsn=300:tx=3:commit=300", 1, "psa:lsn=200:tx=2:commit=200")
        ]


def test_the_query_orders_by_item_and_seq() -> None:
    """Rows inserted out of order (another item between, seq descending) are read in order."""
    db, _ = erp()
    zero = Decimal("0.00")
    entry = {"contract_id": "C1", "amount": zero, "tax_amount": zero, "entry_type": "charge",
             "created_at": NOW}  # fmt: skip
    inserted = [
        ("9", 1, "psa:lsn=50:tx=5:commit=50"),
        ("8", 0, "psa:lsn=1:tx=1:commit=1"),
        ("9", 0, "psa:lsn=90:tx=9:commit=90"),
    ]
    with db.begin() as conn:
        for sid, seq, pos in inserted:
            conn.execute(
                insert(t.erp_billing_transactions).values(
                    transaction_id=f"{sid}-{seq}", source_type="timesheet", source_id=sid,
                    seq=seq, source_position=pos, **entry,
                )
            )  # fmt: skip
    with db.connect() as conn:
        assert [(r.item, r.previous_seq, r.seq) for r in check(conn)] == [("timesheet:9", 0, 1)]
