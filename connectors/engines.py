"""Engines for the two source databases, from the connection settings (SPEC section 5)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from billsync.errors import ConfigError, StackError
from billsync.settings import Settings

# the drivers billsync ships (pyproject): psycopg 3 for PostgreSQL, PyMySQL for MariaDB
_DRIVERS = {
    "postgresql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "mysql": "mariadb+pymysql",
    "mariadb": "mariadb+pymysql",
}


def normalise_url(url: str, field: str) -> str:
    """A SQLAlchemy URL with billsync's driver; plain ``postgresql://`` URLs are accepted."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError; say which setting is wrong
        raise ConfigError(
            f"{field} is not a database URL ({exc})",
            field=field,
            fix="use postgresql://user:password@host:port/db or mysql://…",
        ) from None
    backend = parsed.drivername.split("+", 1)[0]
    if backend not in _DRIVERS:
        raise ConfigError(
            f"{field} names an unsupported database {backend!r}",
            field=field,
            fix="PSA is PostgreSQL (postgresql://…), CRM is MariaDB (mysql:// or mariadb://…)",
        )
    driver = parsed.drivername.partition("+")[2]
    if not driver or (_DRIVERS[backend].startswith("mariadb") and driver == "pymysql"):
        # the CRM is MariaDB: SQLAlchemy's mariadb dialect, whatever the URL's scheme says
        parsed = parsed.set(drivername=_DRIVERS[backend])
    return parsed.render_as_string(hide_password=False)


def psa_engine(settings: Settings, **engine_kw: Any) -> Engine:
    """The PSA database (PostgreSQL, database ``psa``); ``engine_kw`` go to create_engine."""
    return create_engine(normalise_url(settings.require("psa_db_url"), "PSA_DB_URL"), **engine_kw)


def crm_engine(settings: Settings, **engine_kw: Any) -> Engine:
    """The CRM database (MariaDB, database ``crm``); sessions run in UTC.

    TIMESTAMP columns are converted between the session time zone and UTC by MariaDB, so a
    UTC session makes the values billsync writes and reads the instants they denote.
    """
    return create_engine(
        normalise_url(settings.require("crm_db_url"), "CRM_DB_URL"),
        connect_args={"init_command": "SET time_zone = '+00:00'"},
        **engine_kw,
    )


@contextmanager
def reachable(source: str) -> Iterator[None]:
    """Turn a refused or failed database connection into a StackError naming the fix."""
    try:
        yield
    except OperationalError as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0]
        raise StackError(
            f"{source} database",
            f"{reason} — is the local stack up (`billsync stack up`, `billsync stack env`)?",
        ) from None
