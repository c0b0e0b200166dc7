"""Operational bookkeeping tables in the ERP database (created on first use).

- ``recon_audit_runs``: one row per ``billsync recon audit`` run (how many differences), so the
  flow's ``/metrics`` and the dashboard can show the last drift although the audit runs in
  another process.
- ``dlq_replays``: dead letters already re-published by ``billsync dlq replay`` (their
  ``billing.dlq`` position), so a second replay does not publish them again.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
)

from sinks.erp.types import UtcDateTime

metadata = MetaData()

recon_audit_runs = Table(
    "recon_audit_runs",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("run_at", UtcDateTime(), nullable=False),
    Column("lines", Integer, nullable=False),
    Column("schedule", Integer, nullable=False),
    Column("differences", Integer, nullable=False),
)

dlq_replays = Table(
    "dlq_replays",
    metadata,
    Column("dlq_topic", String(128), primary_key=True),
    Column("dlq_partition", Integer, primary_key=True),
    Column("dlq_offset", BigInteger, primary_key=True),
    Column("target_topic", String(128), nullable=False),
    Column("replayed_at", UtcDateTime(), nullable=False),
)


def ensure(engine: Engine) -> None:
    """Create the bookkeeping tables if missing (idempotent)."""
    metadata.create_all(engine, checkfirst=True)
