"""ops/sourcedb/install.py init_erp: what lets the erp connector capture accounting_periods."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect

from connectors.sources import ERP_CAPTURED
from ops.sourcedb.install import erp_capture_statements, init_erp
from ops.stack import topology as t


def test_a_fresh_erp_gets_grants_and_a_publication_of_the_captured_tables() -> None:
    sql = erp_capture_statements(role_exists=True, publication_exists=False, published=set())
    assert sql[0] == 'ALTER TABLE "accounting_periods" REPLICA IDENTITY FULL'
    assert f'GRANT SELECT ON "accounting_periods" TO "{t.ERP_DEBEZIUM}"' in sql
    assert f'GRANT INSERT, UPDATE ON "debezium_heartbeat" TO "{t.ERP_DEBEZIUM}"' in sql
    assert f'GRANT INSERT, UPDATE, DELETE ON "debezium_signal" TO "{t.ERP_DEBEZIUM}"' in sql
    assert sql[-1] == (
        f'CREATE PUBLICATION "{t.ERP_PUBLICATION}" FOR TABLE '
        '"accounting_periods", "debezium_signal", "debezium_heartbeat"'
    )


@pytest.mark.parametrize(
    ("published", "expected"),
    [
        (set(ERP_CAPTURED), None),  # rerun: nothing more
        (
            {"accounting_periods"},
            f'ALTER PUBLICATION "{t.ERP_PUBLICATION}" ADD TABLE '
            '"debezium_signal", "debezium_heartbeat"',
        ),
    ],
)
def test_an_existing_publication_is_completed_not_recreated(
    published: set[str], expected: str | None
) -> None:
    sql = erp_capture_statements(role_exists=True, publication_exists=True, published=published)
    assert not any(s.startswith("CREATE PUBLICATION") for s in sql)
    alters = [s for s in sql if s.startswith("ALTER PUBLICATION")]
    assert alters == ([expected] if expected else [])


def test_without_the_debezium_role_no_grant_is_attempted() -> None:
    sql = erp_capture_statements(role_exists=False, publication_exists=False, published=set())
    assert not any(s.startswith("GRANT") for s in sql)


def test_init_erp_on_sqlite_creates_the_tables_and_says_there_is_no_connector() -> None:
    engine = create_engine("sqlite://")
    notes = init_erp(engine)
    assert notes and "not PostgreSQL" in notes[0]
    tables = set(inspect(engine).get_table_names())
    assert set(ERP_CAPTURED) | {"billing_line_state", "erp_billing_transactions"} <= tables
