"""The one exception root of billsync, and errors that carry their context.

Every error raised by billsync derives from :class:`BillsyncError`. Errors about a record
carry where it came from (topic, partition, offset), its raw bytes and the business key, so
the dead-letter path can keep them as data instead of swallowing them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


class BillsyncError(Exception):
    """Root of every billsync error."""


class ConfigError(BillsyncError):
    """Configuration refused before anything is applied. ``field`` and ``fix`` say what and how."""

    def __init__(self, message: str, *, field: str | None = None, fix: str | None = None) -> None:
        self.field = field
        self.fix = fix
        parts = [message]
        if field:
            parts.append(f"field: {field}")
        if fix:
            parts.append(f"fix: {fix}")
        super().__init__("; ".join(parts))


class StackError(BillsyncError):
    """A component of the local stack failed: names the component, the reason and its log."""

    def __init__(self, component: str, reason: str, log_file: str | None = None) -> None:
        self.component = component
        self.reason = reason
        self.log_file = log_file
        msg = f"{component}: {reason}"
        if log_file:
            msg += f" (log: {log_file})"
        super().__init__(msg)


@dataclass(frozen=True)
class RecordContext:
    """Where a record came from. Travels with every record-level error."""

    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    key: bytes | None = None
    value: bytes | None = None
    business_key: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RecordError(BillsyncError):
    """A record could not be decoded or violates its contract. Routed to the DLQ, never dropped."""

    def __init__(self, message: str, context: RecordContext) -> None:
        self.context = context
        where = f"{context.topic}[{context.partition}]@{context.offset}"
        if context.business_key:
            where += f" key={context.business_key}"
        super().__init__(f"{message} ({where})")


class DeliveryError(BillsyncError):
    """An output could not be delivered (Kafka delivery report or database write failed)."""
