"""One writer per ERP database: a lock held for the whole life of the ERP sink.

The writer's guarantees (:mod:`sinks.erp.writer`) assume it is the ERP's only writer: two
``billsync run`` on one ERP would both diff against the same rows and race on the ledger's
sequence numbers and the outbox. The lock is the database's own, so it dies with the
process that holds it (no stale lock after ``kill -9``):

- PostgreSQL: a session advisory lock (``pg_try_advisory_lock``) on a dedicated connection,
  kept open while the writer lives. Its key is a hash of the ERP schema
  (``current_schema()``: the first schema of the search_path, where the ERP tables live) and
  advisory locks are per database, so two ERPs — other databases, or other schemas of one
  database as the e2e tests use — do not interfere.
- SQLite (a file): an exclusive ``fcntl.flock`` on ``<database file>.writer-lock`` beside it.
  An in-memory SQLite database is private to its process: nothing to lock.

A lock still held is waited for up to :data:`GRACE_S` before refusing: a run restarted at
once after ``kill -9`` may find the old session not yet gone (the server notices the closed
socket within moments).

When the lock is taken, the holder (host, pid, start time) is written to ``erp_writer_lock``;
a refused writer reads it and raises :class:`WriterLockedError` naming the first one.
:func:`check` tests the lock without taking it (a *shared* probe, so processes of one
cluster probing at once do not refuse each other): ``billsync run`` calls it at start, before
Bytewax consumes anything, so a second run is refused with a clear message at once.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

import structlog
from sqlalchemy import Connection, Engine, delete, insert, select, text

from billsync.errors import BillsyncError
from sinks.erp import tables as t

log = structlog.get_logger(__name__)

NAME = "erp"
# the advisory lock key: a 64-bit hash of this text and the ERP schema (same in every process)
PG_KEY = "hashtextextended('billsync-erp-writer:' || current_schema(), 0)"
GRACE_S = 5.0  # wait this long for a held lock before refusing (see the module docstring)
_POLL_S = 0.25


class WriterLockedError(BillsyncError):
    """Another writer holds the ERP database's writer lock. Names it when it can."""

    def __init__(self, where: str, holder: Holder | None) -> None:
        self.holder = holder
        who = holder.describe() if holder is not None else "holder not recorded"
        super().__init__(
            f"another billsync writer holds the ERP database {where} ({who}): "
            "a second `billsync run` on the same ERP is refused; stop the first one, "
            "or point ERP_DB_URL at another database"
        )


@dataclass(frozen=True, slots=True)
class Holder:
    host: str
    pid: int
    started_at: datetime

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.started_at.isoformat()}"


def _holder(engine: Engine) -> Holder | None:
    """The recorded holder, or None (table or row missing: it is only information)."""
    w = t.erp_writer_lock
    try:
        with engine.connect() as conn:
            row = conn.execute(select(w).where(w.c.name == NAME)).mappings().first()
    except Exception:  # a missing table or an unreachable database: no name to give
        return None
    return Holder(row["host"], row["pid"], row["started_at"]) if row is not None else None


def _lock_file(engine: Engine) -> Path | None:
    """Where a SQLite file database's lock lives; None for an in-memory database."""
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(database).with_name(Path(database).name + ".writer-lock")


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


class WriterLock:
    """The held lock. :meth:`acquire` takes it or raises; :meth:`release` gives it back."""

    def __init__(self, engine: Engine, release: Callable[[], None]) -> None:
        self._engine = engine
        self._release = release
        self._released = False

    @classmethod
    def acquire(
        cls, engine: Engine, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    ) -> WriterLock:
        """Take the lock for this process, record it as the holder, or refuse."""
        t.erp_writer_lock.create(engine, checkfirst=True)
        holder = Holder(socket.gethostname(), os.getpid(), clock())
        dialect = engine.dialect.name
        if dialect == "postgresql":
            release = _acquire_pg(engine, holder)
        elif dialect == "sqlite":
            release = _acquire_sqlite(engine, holder)
        else:
            log.warning("erp_writer_lock_unsupported", dialect=dialect)
            release = _nothing
        log.info("erp_writer_lock_taken", host=holder.host, pid=holder.pid)
        return cls(engine, release)

    def release(self) -> None:
        """Give the lock back (idempotent, never raises: the sink calls it from ``close``);
        the holder row is removed first."""
        if self._released:
            return
        self._released = True
        try:
            with self._engine.begin() as conn:
                w = t.erp_writer_lock
                conn.execute(delete(w).where(w.c.name == NAME, w.c.pid == os.getpid()))
        except Exception as exc:  # the row is information only; the lock goes anyway
            log.warning("erp_writer_lock_row_not_removed", error=str(exc))
        try:
            self._release()
        except Exception as exc:  # a dead session or file: its lock is gone with it
            log.warning("erp_writer_lock_release_failed", error=str(exc))


def check(engine: Engine) -> None:
    """Raise :class:`WriterLockedError` if a writer holds the lock now; take nothing."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            if not _waited(lambda: _pg_try(conn, shared=True)):
                raise WriterLockedError(_where(engine), _holder(engine))
            conn.execute(text(f"SELECT pg_advisory_unlock_shared({PG_KEY})"))
    elif engine.dialect.name == "sqlite":
        path = _lock_file(engine)
        if path is None:
            return
        with _open(path) as fh:
            if not _waited(lambda: _flock(fh, fcntl.LOCK_SH)):
                raise WriterLockedError(_where(engine), _holder(engine))
            fcntl.flock(fh, fcntl.LOCK_UN)


def _waited(attempt: Callable[[], bool]) -> bool:
    """``attempt()`` until it succeeds or :data:`GRACE_S` has passed."""
    deadline = time.monotonic() + GRACE_S
    while not attempt():
        if time.monotonic() >= deadline:
            return False
        time.sleep(_POLL_S)
    return True


def _pg_try(conn: Connection, *, shared: bool) -> bool:
    fn = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
    got = bool(conn.execute(text(f"SELECT {fn}({PG_KEY})")).scalar())  # fixed SQL, no input
    conn.commit()  # a session lock outlives the transaction
    return got


def _nothing() -> None:
    return None


def _record(conn: Connection, holder: Holder) -> None:
    w = t.erp_writer_lock
    conn.execute(delete(w).where(w.c.name == NAME))
    conn.execute(
        insert(w),
        [{"name": NAME, "host": holder.host, "pid": holder.pid, "started_at": holder.started_at}],
    )


def _acquire_pg(engine: Engine, holder: Holder) -> Callable[[], None]:
    conn = engine.connect()  # dedicated: the session holds the lock while it lives
    try:
        if not _waited(lambda: _pg_try(conn, shared=False)):
            raise WriterLockedError(_where(engine), _holder(engine))
        _record(conn, holder)
        conn.commit()
    except BaseException:
        conn.invalidate()  # drop the session (and any lock it took) rather than pool it
        conn.close()
        raise

    def release() -> None:
        try:
            conn.execute(text(f"SELECT pg_advisory_unlock({PG_KEY})"))
            conn.commit()
        finally:  # never pool a connection that may still hold the session lock
            conn.invalidate()
            conn.close()

    return release


def _open(path: Path) -> IO[bytes]:
    return path.open("a+b")


def _flock(fh: IO[bytes], mode: int) -> bool:
    try:
        fcntl.flock(fh, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _acquire_sqlite(engine: Engine, holder: Holder) -> Callable[[], None]:
    path = _lock_file(engine)
    if path is None:
        return _nothing
    fh = _open(path)
    if not _waited(lambda: _flock(fh, fcntl.LOCK_EX)):
        fh.close()
        raise WriterLockedError(_where(engine), _holder(engine))
    try:
        with engine.begin() as conn:
            _record(conn, holder)
    except BaseException:
        fh.close()  # closing the file releases the lock
        raise

    def release() -> None:
        fh.close()

    return release
