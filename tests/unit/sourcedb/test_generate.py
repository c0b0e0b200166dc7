"""Demo data: deterministic, sized by scale, valid for the source CHECKs, every case present."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date
from decimal import Decimal

import pytest

from connectors import sources as t
from ops.sourcedb.generate import (
    COLUMNS,
    JURISDICTIONS,
    LABOR_CATEGORIES,
    UNMAPPED_JURISDICTIONS,
    build,
)

DATA = build(1, 42)
LINES = list(DATA.timesheets())


def _col(table: str, name: str) -> list[object]:
    i = COLUMNS[table].index(name)
    rows = LINES if table == "timesheets" else DATA.tables[table]
    return [r[i] for r in rows]


def test_same_scale_and_seed_same_rows() -> None:
    again = build(1, 42)
    assert again.tables == DATA.tables
    assert list(itertools.islice(again.timesheets(), 500)) == LINES[:500]
    other = build(1, 43)
    assert other.tables["employees"] != DATA.tables["employees"]


def test_scale_one_is_about_ten_thousand_lines() -> None:
    assert 9_000 <= len(LINES) <= 11_000
    assert abs(len(LINES) - DATA.expected_timesheets) / len(LINES) < 0.05
    small = build(0.1, 1)
    assert 0 < sum(1 for _ in small.timesheets()) < 2_000


def test_rows_fit_their_columns() -> None:
    for table, rows in DATA.tables.items():
        assert all(len(r) == len(COLUMNS[table]) for r in rows), table
    assert all(len(r) == len(COLUMNS["timesheets"]) for r in LINES)
    assert [r[0] for r in LINES] == list(range(1, len(LINES) + 1))


def test_primary_keys_are_unique() -> None:
    for table, rows in DATA.tables.items():
        keys = [r[0] for r in rows]
        assert len(keys) == len(set(keys)), table


def test_values_satisfy_the_check_constraints() -> None:
    assert set(_col("projects", "status")) == set(t.PROJECT_STATUSES)
    assert set(_col("timesheets", "status")) == set(t.TIMESHEET_STATUSES)
    assert set(_col("milestones", "status")) == set(t.MILESTONE_STATUSES)
    assert set(_col("contracts", "contract_type")) == set(t.CONTRACT_TYPES)
    assert set(_col("contracts", "status")) == set(t.CONTRACT_STATUSES)
    assert set(_col("contracts", "cap_period")) == set(t.CAP_PERIODS)
    assert set(_col("contract_amendments", "status")) == set(t.AMENDMENT_STATUSES)
    for r in DATA.tables["contracts"]:
        assert r[7] is None or r[7] >= r[6]  # end_date >= start_date
    for r in DATA.tables["contract_rates"]:
        assert r[5] is None or r[5] >= r[4]
        assert r[3] >= 0 and r[3] == r[3].quantize(Decimal("0.01"))
    for h in _col("timesheets", "hours"):
        assert isinstance(h, Decimal) and abs(h) < 1000 and h == h.quantize(Decimal("0.01"))


def test_every_contract_type_in_every_status() -> None:
    pairs = Counter((r[3], r[4]) for r in DATA.tables["contracts"])
    assert len(pairs) == len(t.CONTRACT_TYPES) * len(t.CONTRACT_STATUSES)


def test_accounts_span_currencies_and_jurisdictions() -> None:
    assert set(_col("accounts", "currency")) == {"USD", "EUR", "GBP", "CAD", "AUD"}
    jurisdictions = set(_col("accounts", "tax_jurisdiction"))
    assert jurisdictions & {j.code for j in UNMAPPED_JURISDICTIONS}
    assert len(jurisdictions & {j.code for j in JURISDICTIONS}) >= 6
    assert None in _col("accounts", "erp_customer_id")


def test_exception_cases_are_present() -> None:
    categories = set(_col("employees", "labor_category"))
    assert set(LABOR_CATEGORIES) <= categories | {None}
    assert None in categories
    # some contract has no rate for a category, a gap or an overlap between rate versions
    by_key: dict[tuple[str, str], list[tuple[date, date | None]]] = {}
    for r in DATA.tables["contract_rates"]:
        by_key.setdefault((r[1], r[2]), []).append((r[4], r[5]))
    overlaps = gaps = 0
    for spans in by_key.values():
        spans.sort()
        for (_, to), (nxt, _) in itertools.pairwise(spans):
            assert to is not None
            overlaps += to >= nxt
            gaps += (nxt - to).days > 1
    assert overlaps and gaps
    assert any(h <= 0 or h > 24 for h in _col("timesheets", "hours"))
    assert "pending" in _col("contract_amendments", "status")
    approved = [r for r in LINES if r[6] == "approved"]
    assert all(r[7] is not None for r in approved)
    assert all(r[7] is None for r in LINES if r[6] != "approved")
    assert any(r[8] and "'" in r[8] for r in LINES)  # SQL metacharacters in text
    assert any(not r[5] for r in LINES)  # non-billable lines


def test_retainers_and_caps() -> None:
    contracts = DATA.tables["contracts"]
    assert any(r[3] == "retainer" and r[10] is not None for r in contracts)
    assert any(r[8] is not None and r[9] == "month" for r in contracts)
    assert any(r[8] is not None and r[9] == "contract" for r in contracts)


def test_timestamps_are_timezone_aware() -> None:
    for table, rows in DATA.tables.items():
        for name in ("updated_at", "accepted_at"):
            if name in COLUMNS[table]:
                i = COLUMNS[table].index(name)
                assert all(r[i] is None or r[i].tzinfo is not None for r in rows)


def test_scale_must_be_positive() -> None:
    with pytest.raises(ValueError):
        build(0, 1)
