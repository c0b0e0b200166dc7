"""SQLAlchemy metadata of the ERP-side tables (SPEC 3) and billsync's own bookkeeping.

SPEC tables: ``erp_billing_transactions`` (append-only ledger), ``billing_line_state``,
``invoice_schedule``, ``recon_snapshots``. Additions, named here and in ARCHITECTURE.md:

- ``billing_line_state.hours`` / ``.billable``: the line's hours and billable flag, so the
  reconciliation figures (approved/billable/non-billable hours) come from this table alone.
- ``billing_outbox``: records to publish to Kafka, written in the same transaction as the
  ledger (transactional outbox): a crash between the database commit and the Kafka delivery
  loses nothing, the relay publishes them at the next start.
- ``outbox_quarantine``: outbox records that cannot be encoded for their topic, set aside so
  they hold back nothing (:mod:`sinks.kafka.quarantine`; ``billsync outbox quarantine``).
- ``recon_dirty``: (project_id, period) keys whose figures changed since the last snapshot.
- ``billing_progress``: per input partition of the flow (``"topic:partition"``), the highest
  Kafka offset whose changes the ERP has applied (``committed_offset``), written in the same
  transaction as each batch: after a restart the writer recognises the replayed prefix by it
  and applies it as one coalesced batch, so a restart posts nothing new
  (:mod:`sinks.erp.replay`, SPEC 4).
- ``erp_writer_lock``: who holds the ERP's single-writer lock (host, pid, start time), written
  when the lock is taken so a refused second ``billsync run`` can name the first
  (:mod:`sinks.erp.writer_lock`; the lock itself is the database's, not this row).

Closed periods (SPEC 2b): ``accounting_periods`` (finance's period calendar, written by
``billsync periods``, captured by the ``erp`` Debezium connector), ``billing_line_state.final``
/ ``.final_period`` and ``erp_billing_transactions.posting_period``. These columns came after
the first ERP databases were created: ``sinks/erp/migrate.py`` adds them to an existing one.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    false,
)

from sinks.erp.types import Money, UtcDateTime

# the columns of billing_line_state that hold a target: the writer compares them to decide
# whether a stored line state differs from a target, the audit (ops/reads/audit) to report it
STATE_FIELDS = (
    "state",
    "reason",
    "contract_id",
    "project_id",
    "period",
    "billable_amount",
    "billed_amount",
    "held_amount",
    "tax_amount",
    "covered_hours",
    "currency",
    "hours",
    "billable",
    "final",
)

metadata = MetaData()

erp_billing_transactions = Table(
    "erp_billing_transactions",
    metadata,
    Column("transaction_id", String(36), primary_key=True),
    Column("source_type", String(16), nullable=False),
    Column("source_id", String(64), nullable=False),
    Column("seq", Integer, nullable=False, comment="n-th entry of this source item, from 0"),
    Column("contract_id", String(64)),
    Column("project_id", String(64)),
    Column("erp_customer_id", String(64)),
    Column("legal_entity", String(64)),
    Column("erp_item_code", String(64)),
    Column("revenue_account", String(64)),
    Column("cost_center", String(64)),
    Column("work_date", Date),
    Column("period", String(7)),
    Column("hours", Money(5, 2)),
    Column("rate", Money(10, 2)),
    Column("amount", Money(14, 2), nullable=False),
    Column("tax_amount", Money(14, 2), nullable=False),
    Column("currency", String(3)),
    Column("entry_type", String(16), nullable=False),
    Column("source_position", String(160)),
    Column("created_at", UtcDateTime(), nullable=False),
    # SPEC 2b: never a closed period; null only in rows written before closed periods existed
    Column("posting_period", String(7)),
    Index("ix_ebt_item_seq", "source_type", "source_id", "seq", unique=True),
    Index("ix_ebt_project_period", "project_id", "period"),
    Index("ix_ebt_posting_period", "posting_period"),
)

billing_line_state = Table(
    "billing_line_state",
    metadata,
    Column("source_type", String(16), primary_key=True),
    Column("source_id", String(64), primary_key=True),
    Column("state", String(16), nullable=False),
    Column("reason", String(40)),
    Column("contract_id", String(64)),
    Column("project_id", String(64)),
    Column("period", String(7)),
    Column("billable_amount", Money(14, 2), nullable=False),
    Column("billed_amount", Money(14, 2), nullable=False),
    Column("held_amount", Money(14, 2), nullable=False),
    Column("tax_amount", Money(14, 2), nullable=False),
    Column("covered_hours", Money(8, 2), nullable=False),
    Column("currency", String(3)),
    Column("hours", Money(5, 2)),
    Column("billable", Boolean),
    Column("source_position", String(160)),
    Column("updated_at", UtcDateTime(), nullable=False),
    # SPEC 2b: frozen by a close; final_period is the closed period that made it final
    Column("final", Boolean, nullable=False, default=False, server_default=false()),
    Column("final_period", String(7)),
    Index("ix_bls_project_period", "project_id", "period"),
    Index("ix_bls_final_period", "final_period"),
    Index("ix_bls_state_reason", "state", "reason"),
    Index("ix_bls_contract", "contract_id"),
)

# one row per lock name ("erp"): the holder of the single-writer lock, for the refusal message
erp_writer_lock = Table(
    "erp_writer_lock",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", UtcDateTime(), nullable=False),
)

invoice_schedule = Table(
    "invoice_schedule",
    metadata,
    Column("milestone_id", String(64), primary_key=True),
    Column("contract_id", String(64)),
    Column("project_id", String(64)),
    Column("due_date", Date),
    Column("amount", Money(14, 2)),
    Column("currency", String(3)),
    Column("status", String(16)),
)

recon_snapshots = Table(
    "recon_snapshots",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("approved_hours", Money(12, 2), nullable=False),
    Column("billable_hours", Money(12, 2), nullable=False),
    Column("non_billable_hours", Money(12, 2), nullable=False),
    Column("covered_hours", Money(12, 2), nullable=False),
    Column("billed_amount", Money(16, 2), nullable=False),
    Column("tax_amount", Money(16, 2), nullable=False),
    Column("held_amount", Money(16, 2), nullable=False),
    Column("held_count", Integer, nullable=False),
    Column("exception_count", Integer, nullable=False),
    Column("ledger_entries", Integer, nullable=False),
    Column("as_of", UtcDateTime(), nullable=False),
    Column("source_position", String(160)),
)

billing_outbox = Table(
    "billing_outbox",
    metadata,
    # BIGINT on PostgreSQL; SQLite autoincrements only an INTEGER primary key
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("topic", String(128), nullable=False),
    Column("key", LargeBinary),
    Column("payload", Text, nullable=False, comment="the record as JSON; Avro-encoded on publish"),
    Column("created_at", UtcDateTime(), nullable=False),
)

outbox_quarantine = Table(
    "outbox_quarantine",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column(
        "outbox_id",
        BigInteger,
        comment="billing_outbox id it had (relay stage); null: refused before the outbox",
    ),
    Column("stage", String(16), nullable=False, comment="enqueue or relay: where it was refused"),
    Column("topic", String(128), nullable=False),
    Column("key", LargeBinary),
    Column("payload", Text, nullable=False, comment="the record as JSON, as it was written"),
    Column("error", Text, nullable=False, comment="why it cannot be encoded for its topic"),
    Column("created_at", UtcDateTime(), nullable=False, comment="when the record was written"),
    Column("quarantined_at", UtcDateTime(), nullable=False),
)

recon_dirty = Table(
    "recon_dirty",
    metadata,
    Column("project_id", String(64), primary_key=True),
    Column("period", String(7), primary_key=True),
    Column("source_position", String(160)),
)

# SPEC 4 (a restart posts nothing new): what the ERP has applied of the flow's input. One row
# per input partition; committed_offset only grows. Written with each batch by the ERP writer,
# read when the billing step (re)starts (sinks/erp/replay.py). Created by create_all/upgrade
# in an ERP from before it (no row: nothing recorded, a restart replays as before).
billing_progress = Table(
    "billing_progress",
    metadata,
    Column("input_partition", String(255), primary_key=True, comment='"topic:partition"'),
    Column(
        "committed_offset",
        BigInteger,
        nullable=False,
        comment="highest Kafka offset of this partition whose changes the ERP applied",
    ),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# --- closed periods (SPEC 2b) ---------------------------------------------------------------
# Finance's period calendar. A period without a row is open. Written by `billsync periods`
# (sinks/erp/periods.py); the `erp` Debezium connector captures it, so a close or reopen
# reaches the flow at one definite point of the stream. A close keeps reopened_at /
# reopen_reason (the last reopen) and a reopen keeps closed_at / closed_by (the last close):
# the row always shows the latest of each.
accounting_periods = Table(
    "accounting_periods",
    metadata,
    Column("period", Text, primary_key=True, comment="YYYY-MM"),
    Column("status", Text, nullable=False, comment="open | closed"),
    Column("closed_at", UtcDateTime()),
    Column("closed_by", Text),
    Column("reopened_at", UtcDateTime()),
    Column("reopen_reason", Text),
    CheckConstraint("status IN ('open', 'closed')", name="ck_accounting_periods_status"),
)
