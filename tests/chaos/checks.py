"""What every chaos test asserts at the end, once its load has stopped (SPEC 4).

- ``billsync recon audit`` (the flow's own ERP schema) exits 0: every line state and every
  item's ledger sums equal the target recomputed in batch from the source rows, and per item
  and source the ledger's source positions never go backwards (SPEC 4, order; a violation
  never heals — the ledger is append-only — so the first audit that reports one fails);
- the test's own items: the ledger of each nets to its line state's billed and tax amounts
  (0 without a line state) — the same promise, read from the ERP tables directly;
- no effect posted twice anywhere in the ERP (the e2e tier's ledger invariants).
"""

from __future__ import annotations

import json
import time
from decimal import Decimal

from ops.run.watchdog import dump_stacks
from tests.chaos.load import Load
from tests.e2e.harness import HEAL_EVERY_S, Erp, Flow, heal_sources, ledger_violations, stack_report

D = Decimal


def own_ledger_problems(erp: Erp, load: Load) -> list[str]:
    """Per timesheet of the load's world: ledger sums = line state amounts, invariants hold."""
    story = load.story
    numbers = sorted(set(load.lines) | set(range(1, load.next_line)))
    keys = [story.tkey(n) for n in numbers]
    states = erp.lines(keys)
    ledger = erp.ledger([k[1] for k in keys])
    problems = []
    for key in keys:
        entries = ledger.get(key, [])
        have = (
            sum((e["amount"] for e in entries), D("0.00")),
            sum((e["tax_amount"] for e in entries), D("0.00")),
        )
        line = states.get(key)
        want = (
            (D("0.00"), D("0.00")) if line is None else (line["billed_amount"], line["tax_amount"])
        )
        if have != want:
            problems.append(f"{key}: ledger nets to {have}, line state says {want}")
        problems += ledger_violations(key, entries)
    return problems


def audit_until_clean(flow: Flow, load: Load, *, timeout: float) -> float:
    """``billsync recon audit --json`` until it exits 0; prints how the differences shrank
    (all of them, and the test's own) and fails with the last ones. Returns the seconds."""
    t0 = time.monotonic()
    prefix = load.story.p
    ids = {str(load.story.ts(n)) for n in range(1, load.next_line)}
    trend: list[str] = []
    next_heal = time.monotonic() + HEAL_EVERY_S
    while True:
        flow.check_alive()
        if time.monotonic() > next_heal:
            heal_sources(flow.settings)
            next_heal = time.monotonic() + HEAL_EVERY_S
        res = flow.cli("recon", "audit", "--json")
        if res.returncode == 0:
            took = time.monotonic() - t0
            print(f"audit clean after {took:.0f}s; differences (all/own) by run: {trend}")
            return took
        try:
            out = json.loads(res.stdout)
            diffs, regressions = out["differences"], out["position_regressions"]
        except (ValueError, KeyError):
            diffs = [{"key": "?", "error": res.stdout[-500:] + res.stderr[-1500:]}]
            regressions = []
        if regressions:
            shown = "\n".join(str(r) for r in regressions[:20])
            raise AssertionError(
                f"{len(regressions)} ledger entr(y/ies) behind an earlier entry's source "
                f"position (applied out of commit order):\n{shown}"
            )
        own = [d for d in diffs if str(d["key"]).split(":", 1)[-1] in ids or prefix in d["key"]]
        trend.append(f"{time.monotonic() - t0:.0f}s:{len(diffs)}/{len(own)}")
        if time.monotonic() - t0 > timeout:
            shown = "\n".join(str(d) for d in diffs[:20])
            tail = [ln for ln in flow.log_tail(400).splitlines() if "Connection refused" not in ln]
            # where the live flow is (the watchdog dumps stacks only when it fires)
            stacks = dump_stacks(flow.proc.pid) if flow.proc is not None else None
            raise AssertionError(
                f"recon audit not clean after {timeout:.0f}s ({trend}).\n"
                f"{stack_report(flow.settings)}\nfirst differences:\n"
                f"{shown}\nflow log tail (without librdkafka's connection refusals):\n"
                + "\n".join(tail[-40:])
                + f"\nflow stacks (py-spy):\n{stacks}"
            )
        time.sleep(2)


def converged(flow: Flow, erp: Erp, load: Load, *, timeout: float = 300.0) -> float:
    """Assert the end state; returns the seconds the audit took to come clean."""
    took = audit_until_clean(flow, load, timeout=timeout)
    problems = own_ledger_problems(erp, load)
    assert not problems, "\n".join(problems[:30])
    everywhere = erp.all_ledger_violations()
    assert not everywhere, f"{len(everywhere)} ledger violation(s):\n" + "\n".join(everywhere[:20])
    return took
