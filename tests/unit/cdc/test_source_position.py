"""``SourcePosition.parse`` reads back what ``str(position)`` wrote into ``source_position``."""

from __future__ import annotations

from dataclasses import replace

import pytest

from billsync.change import SourcePosition

ROUND_TRIP = [
    SourcePosition("psa", lsn=24_023_128, tx_id=771),
    SourcePosition("psa", lsn=24_023_128, tx_id=771, commit_lsn=24_022_900),
    SourcePosition("erp", lsn=10_120, tx_id=None),
    SourcePosition("psa", lsn=0, tx_id=0, commit_lsn=0),
    SourcePosition("crm", file="mariadb-bin.000001", pos=4_411, row=0),
    SourcePosition("crm", file="mariadb-bin.000002", pos=4, row=3, gtid="0-1-17"),
    # a MySQL GTID holds a colon of its own
    SourcePosition("crm", file="mysql-bin.000010", pos=99, row=1, gtid="3e11fa47-71ca:23"),
    SourcePosition("sales.eu", file="binlog.000001", pos=7, row=0),
]


@pytest.mark.parametrize("position", ROUND_TRIP, ids=str)
def test_parse_reads_back_what_str_wrote(position: SourcePosition) -> None:
    parsed = SourcePosition.parse(str(position))
    assert parsed == position
    assert parsed is not None and parsed.commit_order() == position.commit_order()


def test_ts_ms_is_not_part_of_the_text() -> None:
    position = SourcePosition("psa", lsn=5, tx_id=1, ts_ms=1_717_000_000_000)
    assert SourcePosition.parse(str(position)) == replace(position, ts_ms=None)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "",
        "mappings-changed",
        "bench:T1:3",  # the writer bench's ids
        "psa:lsn=x:tx=1",
        "psa:lsn=5",  # no tx
        "psa:lsn=5:tx=1:when=now",
        "crm:None:None:row=0",  # a binlog position without file/pos
        "crm:mariadb-bin.000001:12",  # no row
        "crm:mariadb-bin.000001:12:row=0:thread=7",
        ":lsn=5:tx=1",
    ],
)
def test_anything_else_is_not_a_position(text: str | None) -> None:
    assert SourcePosition.parse(text) is None


def test_parsed_positions_compare_in_commit_order() -> None:
    """A transaction that began earlier (lower LSN) but committed later sorts after."""
    late_commit = SourcePosition.parse("psa:lsn=100:tx=7:commit=300")
    early_commit = SourcePosition.parse("psa:lsn=200:tx=8:commit=250")
    assert late_commit is not None and early_commit is not None
    assert early_commit.commit_order() == (250, 200)
    assert late_commit.commit_order() == (300, 100)
