"""Rounding half-up, periods, and the reference mapping files."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from billsync.errors import ConfigError
from dataflows.billing.mappings import DEFAULT_DIRECTORY, load_mappings
from dataflows.billing.money import milestone_period, month_of, q2, utc_date


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2.345", "2.35"),
        ("2.344", "2.34"),
        ("2.355", "2.36"),
        ("0.005", "0.01"),
        ("0.004999", "0.00"),
        ("-2.345", "-2.35"),
        ("1.125", "1.13"),  # banker's rounding would give 1.12
        ("10", "10.00"),
    ],
)
def test_q2_half_up(value: str, expected: str) -> None:
    assert str(q2(Decimal(value))) == expected


def test_q2_refuses_float() -> None:
    with pytest.raises(TypeError):
        q2(1.5)  # type: ignore[arg-type]  # the point of the test: floats are refused


def test_periods() -> None:
    assert month_of(date(2024, 3, 1)) == "2024-03"
    assert month_of(None) is None
    late_ny = datetime(2024, 3, 31, 21, 0, tzinfo=timezone(timedelta(hours=-4)))
    assert utc_date(late_ny) == date(2024, 4, 1)
    assert milestone_period(late_ny) == "2024-04"
    assert milestone_period(datetime(2024, 3, 31, 23, 59, tzinfo=UTC)) == "2024-03"
    assert milestone_period(None) is None


def test_shipped_reference_files_load() -> None:
    mappings = load_mappings()
    assert {"CONSULTANT", "SENIOR_CONSULTANT", "MANAGER", "PARTNER", "ANALYST", "DEVELOPER",
            "ARCHITECT", "MILESTONE"} <= set(mappings.labor)  # fmt: skip
    assert mappings.tax["GB"] == Decimal("0.20") and mappings.tax["US-NY"] == Decimal("0.08875")
    assert len(mappings.fingerprint) == 64


def _copy(tmp_path: Path, **replace: str) -> Path:
    for name in ("labor_categories.csv", "tax_rates.csv"):
        text = replace.get(name.split(".")[0], (DEFAULT_DIRECTORY / name).read_text())
        (tmp_path / name).write_text(text)
    return tmp_path


def test_fingerprint_follows_content(tmp_path: Path) -> None:
    same = load_mappings(_copy(tmp_path))
    assert same.fingerprint == load_mappings().fingerprint
    changed = (DEFAULT_DIRECTORY / "tax_rates.csv").read_text().replace("0.19", "0.16")
    other = load_mappings(_copy(tmp_path, tax_rates=changed))
    assert other.fingerprint != same.fingerprint and other.tax["DE"] == Decimal("0.16")


@pytest.mark.parametrize(
    ("stem", "text", "where"),
    [
        ("tax_rates", "jurisdiction,rate\nGB,0.2\n", ":1:header"),
        ("tax_rates", "tax_jurisdiction,tax_rate\nGB,0.2\nDE,abc\n", ":3:tax_rate"),
        ("tax_rates", "tax_jurisdiction,tax_rate\nGB,20\n", ":2:tax_rate"),
        ("tax_rates", "tax_jurisdiction,tax_rate\nGB,0.2\nGB,0.2\n", ":3:tax_jurisdiction"),
        ("tax_rates", "", ":1:-"),
        (
            "labor_categories",
            "labor_category,erp_item_code,revenue_account\nX,,4000\n",
            ":2:erp_item_code",
        ),
        ("labor_categories", "labor_category,erp_item_code,revenue_account\nX,Y\n", ":2:-"),
    ],
)
def test_bad_file_names_file_line_and_column(
    tmp_path: Path, stem: str, text: str, where: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_mappings(_copy(tmp_path, **{stem: text}))
    assert info.value.field is not None and info.value.field.endswith(f"{stem}.csv{where}")
    assert info.value.fix


def test_missing_file(tmp_path: Path) -> None:
    (tmp_path / "tax_rates.csv").write_text("tax_jurisdiction,tax_rate\n")
    with pytest.raises(ConfigError, match=r"labor_categories\.csv"):
        load_mappings(tmp_path)
