"""The results of ``billsync recon audit`` runs: written by the audit, read by metrics."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, insert, select

from ops.reads.queries.tables import recon_audit_runs as r


@dataclass(frozen=True, slots=True)
class AuditRun:
    run_at: datetime
    lines: int
    schedule: int
    differences: int


def record(conn: Connection, run: AuditRun) -> None:
    conn.execute(
        insert(r),
        [
            {
                "run_at": run.run_at,
                "lines": run.lines,
                "schedule": run.schedule,
                "differences": run.differences,
            }
        ],
    )


def last(conn: Connection) -> AuditRun | None:
    row = conn.execute(select(r).order_by(r.c.id.desc()).limit(1)).mappings().first()
    if row is None:
        return None
    return AuditRun(row["run_at"], row["lines"], row["schedule"], row["differences"])
