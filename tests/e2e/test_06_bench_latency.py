"""e2e 06 — ``bench e2e`` measures source commit to ERP commit on the real stack (issue 13).

Why it exists: the latency figure of BENCHMARKS.md must mean what it says. The bench reads
PostgreSQL commit timestamps at both ends (``track_commit_timestamp``, set by the stack): the
PSA transaction that inserted a row and the writer's transaction that wrote its line state,
on one server clock. This runs the bench for a few seconds against a flow of its own and
checks that every row it committed is found in the ERP with a commit time after its source
commit, and that the bench removes its rows afterwards (the flow then releases the lines).
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import SecretStr

from billsync.settings import Settings
from ops.bench.e2e import NOTE, run_e2e
from tests.e2e.harness import Erp, Flow, Sources, billed_firm

D = Decimal


def test_bench_e2e_times_every_row_from_psa_commit_to_erp_commit(
    make_flow: Callable[[], Flow],
    erp_of: Callable[[Flow], Erp],
    sources: Sources,
    prefix: str,
    stack: Settings,
) -> None:
    firm = billed_firm(make_flow, erp_of, sources, prefix, "e2e bench")
    flow = firm.flow

    settings = stack.model_copy(update={"erp_db_url": SecretStr(flow.erp_url)})
    said: list[str] = []
    result: dict[str, Any] = run_e2e(settings, rate=20, seconds=3, drain_s=90, say=said.append)

    assert result["project_id"] == f"{prefix}-PRJ"  # the bench used the billed line's project
    assert result["committed"] == 60 and result["in_erp"] == 60 and result["missing"] == 0
    # an ERP commit after its source commit, and well inside the drain window
    assert 0 < result["latency_p50_s"] <= result["latency_p99_s"] <= result["latency_max_s"] < 90
    assert result["measured"].startswith("PostgreSQL commit timestamps")
    assert said and "60 approved lines" in said[0]
    # the bench deleted its rows: the PSA holds none of them any more
    with sources.psa.connect() as conn:
        left = conn.exec_driver_sql(
            "SELECT count(*) FROM timesheets WHERE notes = %(n)s AND project_id = %(p)s",
            {"n": NOTE, "p": f"{prefix}-PRJ"},
        ).scalar()
    assert left == 0
    flow.check_alive()
