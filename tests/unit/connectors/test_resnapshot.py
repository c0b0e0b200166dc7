"""connectors/resnapshot.py: the Debezium signal rows that re-snapshot a reopened period."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, select

from connectors.resnapshot import SIGNAL_TYPE, send, signal_rows, windows
from connectors.sources import psa_signal


def test_one_signal_per_table_spanning_the_earliest_final_item_to_the_end_of_the_period() -> None:
    items = [("timesheet", "2026-03"), ("timesheet", "2025-11"), ("milestone", "2026-02")]
    rows = signal_rows("2026-03", items, "abc")
    assert [r["id"] for r in rows] == [
        "reopen-2026-03-timesheets-abc",
        "reopen-2026-03-milestones-abc",
    ]
    assert {r["type"] for r in rows} == {SIGNAL_TYPE} == {"execute-snapshot"}
    assert [json.loads(r["data"]) for r in rows] == [
        {
            "data-collections": ["public.timesheets"],
            "type": "incremental",
            "additional-conditions": [
                {
                    "data-collection": "public.timesheets",
                    "filter": "work_date >= '2025-11-01' AND work_date < '2026-04-01'",
                }
            ],
        },
        {
            "data-collections": ["public.milestones"],
            "type": "incremental",
            "additional-conditions": [
                {
                    "data-collection": "public.milestones",
                    "filter": "accepted_at >= '2026-02-01 00:00:00+00' "
                    "AND accepted_at < '2026-04-01 00:00:00+00'",
                }
            ],
        },
    ]


@pytest.mark.parametrize(
    ("period", "items", "expected"),
    [
        ("2026-01", [], []),  # nothing final: no signal
        ("2025-12", [("milestone", "2025-12")], [("public.milestones", "2025-12", "2025-12")]),
    ],
)
def test_windows(
    period: str, items: list[tuple[str, str]], expected: list[tuple[str, ...]]
) -> None:
    assert [(w.table, w.start, w.end) for w in windows(period, items)] == expected


def test_the_year_end_bound_is_january_of_the_next_year() -> None:
    (w,) = windows("2025-12", [("timesheet", "2025-12")])
    assert w.filter == "work_date >= '2025-12-01' AND work_date < '2026-01-01'"


@pytest.mark.parametrize(
    "items", [[("invoice", "2026-01")], [("timesheet", "2026-02")]], ids=["type", "later"]
)
def test_an_item_that_cannot_be_final_by_the_close_is_refused(items: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        windows("2026-01", items)


def test_send_inserts_the_rows_into_the_signal_table() -> None:
    engine = create_engine("sqlite://")
    psa_signal.create(engine)
    rows = signal_rows("2026-01", [("timesheet", "2026-01")], "t1")
    assert send(engine, rows) == 1
    with engine.connect() as conn:
        stored = [dict(r) for r in conn.execute(select(psa_signal)).mappings()]
    assert stored == rows
