"""``billsync recon audit`` reads each real source database in one snapshot.

While the audit's snapshot transaction is open, another session commits a row; the audit's
next statement must not see it (PostgreSQL REPEATABLE READ, MariaDB START TRANSACTION WITH
CONSISTENT SNAPSHOT). The unit test ``tests/unit/sinks/test_audit_sources.py`` shows the same
on SQLite; this one checks the two engines billsync actually reads.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, Table, delete, func, insert, select

from billsync.settings import Settings
from connectors import engines
from connectors import sources as src
from ops.reads.audit.sources import snapshot_read

pytestmark = pytest.mark.integration


def _project(key: str) -> dict[str, Any]:
    return {
        "project_id": key,
        "code": key[:32],
        "name": key,
        "account_id": key,
        "contract_id": key,
        "status": "active",
        "legal_entity": "it",
    }


def _account(key: str) -> dict[str, Any]:
    return {"account_id": key, "name": key, "tax_jurisdiction": "it", "currency": "EUR"}


CASES: list[tuple[Callable[[Settings], Engine], Table, Callable[[str], dict[str, Any]]]] = [
    (engines.psa_engine, src.projects, _project),
    (engines.crm_engine, src.accounts, _account),
]


@pytest.mark.parametrize(("make_engine", "table", "row"), CASES, ids=["psa", "crm"])
def test_a_commit_during_the_audit_read_is_not_seen(
    stack: Settings,
    make_engine: Callable[[Settings], Engine],
    table: Table,
    row: Callable[[str], dict[str, Any]],
) -> None:
    engine = make_engine(stack)
    key = f"it-{uuid.uuid4().hex[:12]}"
    key_column = next(iter(table.primary_key.columns))
    count = select(func.count()).select_from(table)
    try:
        with snapshot_read(engine) as audit:
            before = audit.execute(count).scalar_one()
            with engine.begin() as other:
                other.execute(insert(table), [row(key)])
            assert audit.execute(count).scalar_one() == before
        with engine.connect() as fresh:
            assert fresh.execute(count).scalar_one() == before + 1
    finally:
        with engine.begin() as conn:
            conn.execute(delete(table).where(key_column == key))
        engine.dispose()
