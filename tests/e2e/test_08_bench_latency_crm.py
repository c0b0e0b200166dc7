"""e2e 08 — ``bench e2e --source crm`` times CRM rate changes to the ERP on the real stack.

Why it exists: the CRM figure of BENCHMARKS.md must mean what it says. The bench changes one
contract rate (MariaDB, the CRM connector) to a new value again and again and reads, on the
ERP, when the probe's ledger first held each value or a later one (PostgreSQL commit
timestamps). This runs it for a few seconds on the test's own firm and flow, and checks that
the last value reached the ERP, that every change gave a sample, each an ERP commit after
the CRM commit, and that the bench puts
the rate back and removes its probe (the flow then bills the firm's line as before).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from billsync.settings import Settings
from ops.bench.e2e_crm import run_crm_e2e
from tests.e2e.harness import Erp, Flow, Sources, billed_firm

D = Decimal


def test_bench_e2e_crm_times_rate_changes_from_crm_commit_to_erp_commit(
    make_flow: Callable[[], Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
    stack: Settings,
) -> None:
    firm = billed_firm(make_flow, erp_of, sources, prefix, "e2e crm bench")
    flow, db, probe = firm.flow, firm.erp, firm.base + 2

    settings = stack.model_copy(update={"erp_db_url": SecretStr(flow.erp_url)})
    said: list[str] = []
    result: dict[str, Any] = run_crm_e2e(
        settings, rate=2, seconds=3, drain_s=90, contract=f"{prefix}-CON", probe_id=probe,
        say=said.append,
    )  # fmt: skip

    assert result["contract_id"] == f"{prefix}-CON" and result["changes"] == 6
    assert result["last_change_seen"] and result["last_value"] == "100.06"
    assert result["samples"] == 6  # one per change, from the probe's ledger
    assert 0 < result["latency_p50_s"] <= result["latency_p99_s"] <= result["latency_max_s"] < 90
    assert said and f"probe {probe}" in said[0]
    # the rate is back, and the firm's line is billed at it again; the probe is gone
    with sources.crm.connect() as conn:
        rate = conn.exec_driver_sql(
            "SELECT hourly_rate FROM contract_rates WHERE rate_id = %s", (f"{prefix}-RATE",)
        ).scalar()
    assert rate == D("100.00")
    db.wait_lines({firm.control: {"state": "billed", "billed_amount": D("800.00")},
                   ("timesheet", str(probe)): None},
                  flow=flow, what="the rate back, the probe released")  # fmt: skip
    flow.check_alive()
