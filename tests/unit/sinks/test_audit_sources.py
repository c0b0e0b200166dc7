"""The audit reads each source in one snapshot: a commit landing mid-read is not half seen.

SQLite (WAL mode) stands in for a source database: a second connection commits a project
while the audit is between reading ``employees`` and ``projects``. One snapshot means the
audit's world does not contain it. The same property on the real engines (PostgreSQL
REPEATABLE READ, MariaDB START TRANSACTION WITH CONSISTENT SNAPSHOT) needs the stack: see
``tests/integration/test_audit_snapshot.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Engine, MetaData, Table, create_engine, event, insert, text

from billsync.errors import ConfigError
from connectors import sources as src
from ops.reads.audit.sources import read_world, snapshot_plan, snapshot_read


def _plain_copy(metadata: MetaData, table: Table) -> None:
    """The table's columns and primary key only: SQLite knows no MariaDB defaults."""
    Table(
        table.name,
        metadata,
        *(Column(c.name, c.type, primary_key=c.primary_key) for c in table.columns),
    )


@pytest.fixture
def source(tmp_path: Path) -> Engine:
    engine = create_engine(f"sqlite:///{tmp_path / 'source.sqlite3'}")
    metadata = MetaData()
    for name in (*src.PSA_TABLES, *src.CRM_TABLES):
        _plain_copy(metadata, getattr(src, name))
    with engine.begin() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")  # readers keep snapshots, writers go on
    metadata.create_all(engine)
    return engine


def _project(project_id: str) -> dict[str, Any]:
    return {
        "project_id": project_id,
        "code": project_id,
        "name": project_id,
        "account_id": "A1",
        "contract_id": "C1",
        "status": "active",
        "legal_entity": "LE1",
    }


def test_a_commit_between_two_tables_is_not_seen(source: Engine, tmp_path: Path) -> None:
    writer = create_engine(f"sqlite:///{tmp_path / 'source.sqlite3'}")
    with writer.begin() as conn:
        conn.execute(insert(src.projects), [_project("P1")])
    committed: list[str] = []

    @event.listens_for(source, "after_cursor_execute")
    def commit_meanwhile(*args: Any) -> None:
        statement = str(args[2])
        if "FROM employees" in statement and not committed:
            with writer.begin() as conn:  # another session commits while the audit reads
                conn.execute(insert(src.projects), [_project("P2")])
            committed.append("P2")

    world = read_world(source, source)
    assert committed == ["P2"]
    assert sorted(world.table("projects")) == ["P1"]  # the snapshot of the first read
    with writer.connect() as conn:  # and P2 is there for the next audit
        assert conn.execute(text("SELECT count(*) FROM projects")).scalar_one() == 2


def test_the_snapshot_transaction_is_open_for_every_read(source: Engine) -> None:
    with snapshot_read(source) as conn:
        conn.execute(text("SELECT count(*) FROM employees"))
        assert conn.connection.dbapi_connection.in_transaction  # type: ignore[union-attr]  # sqlite3.Connection


@pytest.mark.parametrize(
    ("dialect", "isolation", "begin"),
    [
        ("postgresql", "REPEATABLE READ", None),  # snapshot at the first statement, kept
        ("mariadb", "REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"),
        ("mysql", "REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY"),
        ("sqlite", None, "BEGIN"),
    ],
)
def test_one_snapshot_per_dialect(dialect: str, isolation: str | None, begin: str | None) -> None:
    options, statement = snapshot_plan(dialect)
    assert options.get("isolation_level") == isolation
    assert statement == begin


def test_an_unknown_dialect_is_refused() -> None:
    with pytest.raises(ConfigError, match="one snapshot"):
        snapshot_plan("oracle")
