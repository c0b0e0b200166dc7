"""explain on a small world, the dashboard page, the scrape-time collector and /health."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
from prometheus_client import CollectorRegistry, generate_latest

from billsync.model import Account, Contract, ContractRate, Employee, Project, Timesheet
from dataflows.billing.batch import World
from dataflows.billing.mappings import load_mappings
from dataflows.billing.target import SourceType
from ops.reads.dashboard.page import render
from ops.reads.dashboard.summary import summary
from ops.reads.metrics import ErpCollector
from ops.reads.queries.explain import explain
from ops.run.http import Health, serve
from tests.unit.queries.erp import erp

D = Decimal
APPROVED = datetime(2026, 3, 5, 9, 0, tzinfo=UTC)


def world(category: str) -> World:
    return World.of(
        [
            Employee("E1", labor_category="CONSULTANT", cost_center="CC1"),
            Project("P1", account_id="A1", contract_id="C1", status="active"),
            Contract(
                "C1",
                account_id="A1",
                contract_type="time_and_materials",
                status="active",
                currency="EUR",
                start_date=date(2026, 1, 1),
            ),
            Account("A1", tax_jurisdiction="DE", currency="EUR", erp_customer_id="CUST1"),
            ContractRate("R1", contract_id="C1", labor_category=category, hourly_rate=D("100")),
            Timesheet(
                1,
                employee_id="E1",
                project_id="P1",
                work_date=date(2026, 3, 2),
                hours=D("8.00"),
                billable=True,
                status="approved",
                approved_at=APPROVED,
            ),
        ]
    )


def test_explain_names_the_rule_that_fired_and_the_rows_it_read() -> None:
    mappings = load_mappings()
    with erp().connect() as conn:
        ex = explain(world("NOBODY"), mappings, SourceType.TIMESHEET, "1", conn)
    assert ex.target is not None
    # the employee category is not mapped in the reference CSVs, or there is no rate: 13 or 14
    assert ex.rule in (13, 14)
    assert ex.path[-1].startswith(f"rule {ex.rule}:") and "FIRED" in ex.path[-1]
    tables = [name for name, _ in ex.rows]
    assert tables[:4] == ["employees", "projects", "contracts", "accounts"]
    assert ex.line_state is not None and ex.line_state["source_id"] == "1"
    assert ex.as_dict()["rows"][1]["row"]["project_id"] == "P1"


def test_explain_names_the_unexpected_value_and_the_rule_that_read_it() -> None:
    rows = [r for r in world("CONSULTANT").rows() if not isinstance(r, Contract)]
    rows.append(Contract("C1", "A1", None, "time_and_materials", "expired", "EUR"))
    with erp().connect() as conn:
        ex = explain(World.of(rows), load_mappings(), SourceType.TIMESHEET, "1", conn)
    assert ex.target is not None and ex.target.reason == "UNEXPECTED_SOURCE_VALUE"
    assert (ex.rule, ex.unexpected) == (7, "contracts.status='expired'")
    assert ex.path[-1].startswith("rule 7:") and "contracts.status='expired'" in ex.path[-1]
    assert ex.as_dict()["unexpected"] == "contracts.status='expired'"


def test_explain_of_a_line_not_in_the_sources_is_rule_1() -> None:
    with erp().connect() as conn:
        ex = explain(World.of([]), load_mappings(), SourceType.TIMESHEET, "99", conn)
    assert ex.rule == 1 and ex.target is None and ex.item is None


def test_page_renders_charts_and_figures() -> None:
    html = render(summary(erp(), None, lambda: 3))
    assert 'id="holds-chart"' in html and 'id="periods-chart"' in html
    assert "PROJECT_ON_HOLD" in html and "BILLING_CAP_EXCEEDED (partial)" in html
    assert "2026-02" in html and "1,200.00" in html
    assert "never run" in html  # no audit yet


def test_collector_reports_queue_and_audit_without_a_broker() -> None:
    registry = CollectorRegistry()
    registry.register(ErpCollector(erp(), "127.0.0.1:1"))
    text = generate_latest(registry).decode()
    assert 'billsync_exception_queue_lines{reason="PROJECT_ON_HOLD",state="held"} 2.0' in text
    assert "billsync_erp_up 1.0" in text
    assert "billsync_dlq_depth" not in text  # broker unreachable: no made-up value


def test_health_is_503_until_the_flow_started() -> None:
    health = Health(erp())
    server = serve(0, health)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        first = httpx.get(f"{url}/health")
        health.flow_started = True
        second = httpx.get(f"{url}/health")
        metrics = httpx.get(f"{url}/metrics")
    finally:
        server.shutdown()
    assert first.status_code == 503 and first.json()["erp"] == "ok"
    assert second.status_code == 200 and second.json()["status"] == "ok"
    assert metrics.status_code == 200
