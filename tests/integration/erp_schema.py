"""A throwaway ERP schema (PostgreSQL search_path) for tests that write ERP rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine, text

from billsync.settings import Settings


@contextmanager
def erp_schema(settings: Settings, name: str) -> Iterator[tuple[str, Engine]]:
    """(ERP URL whose search_path is a new schema ``name``, engine on it); dropped afterwards."""
    base = settings.require("erp_db_url")
    admin = create_engine(base)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    url = base + ("&" if "?" in base else "?") + f"options=-csearch_path%3D{name}"
    engine = create_engine(url)
    try:
        yield url, engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
        admin.dispose()
