"""Plain records the ERP writer turns into Kafka payloads (JSON-safe dicts for the outbox)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from dataflows.billing.ledger import LedgerEntry
from dataflows.billing.target import QUEUE_STATES, State

TRANSACTIONS_TOPIC = "billing.transactions"
EXCEPTIONS_TOPIC = "billing.exceptions"
RECON_TOPIC = "recon.snapshots"
DLQ_TOPIC = "billing.dlq"


def jsonable(value: Any) -> Any:
    """Decimal → str, date/datetime → ISO text: exact and reversible for the outbox."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def transaction_record(
    entry: LedgerEntry,
    source_position: str | None,
    created_at: datetime,
    posting_period: str | None = None,
) -> dict[str, Any]:
    return {
        "transaction_id": entry.transaction_id,
        "source_type": entry.source_type,
        "source_id": entry.source_id,
        "contract_id": entry.contract_id,
        "project_id": entry.project_id,
        "erp_customer_id": entry.erp_customer_id,
        "legal_entity": entry.legal_entity,
        "erp_item_code": entry.erp_item_code,
        "revenue_account": entry.revenue_account,
        "cost_center": entry.cost_center,
        "work_date": entry.work_date,
        "period": entry.period,
        "posting_period": posting_period,
        "hours": entry.hours,
        "rate": entry.rate,
        "amount": entry.amount,
        "tax_amount": entry.tax_amount,
        "currency": entry.currency,
        "entry_type": entry.entry_type,
        "source_position": source_position,
        "created_at": created_at,
    }


def exception_event(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    source_position: str | None,
    occurred_at: datetime,
) -> dict[str, Any] | None:
    """The ``billing.exceptions`` event for a line moving into, within or out of the queue.

    ``old``/``new`` are billing_line_state rows (None: no line state). Returns None when
    neither side is held / exception / partially_held, or when nothing visible changed.
    """
    old_q = old is not None and State(old["state"]) in QUEUE_STATES
    new_q = new is not None and State(new["state"]) in QUEUE_STATES
    if not (old_q or new_q):
        return None
    if old_q and new_q:
        event = "changed"
    elif new_q:
        event = "entered"
    else:
        event = "released"
    return _event(event, None, old, new, source_position, occurred_at)


def _event(
    event: str,
    reason: str | None,
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    source_position: str | None,
    occurred_at: datetime,
) -> dict[str, Any]:
    """A ``billing.exceptions`` record: the line's figures are the new side's (or, when the
    line no longer has a state, the old side's)."""
    side = new if new is not None else old
    assert side is not None  # an event is about a line that has or had a state
    return {
        "source_type": side["source_type"],
        "source_id": side["source_id"],
        "contract_id": side["contract_id"],
        "project_id": side["project_id"],
        "period": side["period"],
        "event": event,
        "old_state": old["state"] if old else None,
        "old_reason": old["reason"] if old else None,
        "new_state": new["state"] if new else None,
        "new_reason": new["reason"] if new else None,
        "reason": reason,
        "billable_amount": side["billable_amount"],
        "billed_amount": side["billed_amount"],
        "held_amount": side["held_amount"],
        "tax_amount": side["tax_amount"],
        "currency": side["currency"],
        "source_position": source_position,
        "occurred_at": occurred_at,
    }


CHANGED_AFTER_CLOSE = "CHANGED_AFTER_CLOSE"


def correction_event(
    old: Mapping[str, Any],
    new: Mapping[str, Any] | None,
    source_position: str | None,
    occurred_at: datetime,
) -> dict[str, Any]:
    """The ``billing.exceptions`` event of a final line reopened by its own row (SPEC 2b):
    ``old`` is the frozen line state, ``new`` what it is now (None: no line state)."""
    return _event("corrected", CHANGED_AFTER_CLOSE, old, new, source_position, occurred_at)


def dead_letter_row(letter: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The ``billing_outbox`` row of a dead letter (its bytes as hex, ``received_at``)."""
    record = {**letter, "received_at": now}
    payload = {k: (v.hex() if isinstance(v, bytes) else jsonable(v)) for k, v in record.items()}
    return {"topic": DLQ_TOPIC, "key": None, "payload": orjson.dumps(payload).decode(),
            "created_at": now}  # fmt: skip
