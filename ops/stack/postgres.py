"""PostgreSQL 15 from Debian as a private cluster: own data dir, port, socket; databases psa, erp.

``provision`` creates the roles and databases; the erp connector's tables, grants and
publication come later, from ``billsync db init`` run as erp_app (ops/sourcedb/install.py):
a publication FOR TABLE needs its tables to exist.

Server settings come from ``topology.PG_SERVER_SETTINGS`` and are passed on the command line,
so a changed port needs no config edit. The superuser is reachable only through the unix socket
in ``data/postgres-run`` (mode 0700, trust): TCP logins need a password and refuse ``postgres``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import ClassVar

import psycopg
from psycopg import sql

from billsync.errors import StackError
from ops.stack import topology as t
from ops.stack.component import Component, Launch

PG_BIN = Path("/usr/lib/postgresql/15/bin")
SYSTEM_USER = "postgres"

HBA = """\
# written by billsync stack: socket = superuser (socket dir is 0700), TCP = passwords
local   all          all                          trust
host    all          postgres    127.0.0.1/32     reject
host    all          all         127.0.0.1/32     scram-sha-256
host    replication  all         127.0.0.1/32     scram-sha-256
"""


class Postgres(Component):
    name: ClassVar[str] = "postgres"
    start_timeout: ClassVar[float] = 60.0
    stop_signal: ClassVar[int] = signal.SIGINT  # "fast" shutdown

    @property
    def port(self) -> int:
        return self.ctx.settings.pg_port

    @property
    def socket_dir(self) -> Path:
        return self.ctx.paths.db_root / "postgres-run"

    def _user(self) -> str | None:
        return SYSTEM_USER if os.geteuid() == 0 else None

    def _own(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, mode)

    def prepare(self) -> None:
        if not (PG_BIN / "postgres").exists():
            raise StackError(self.name, f"{PG_BIN}/postgres not found", str(self.log_file))
        self._own(self.socket_dir, 0o700)
        if (self.data_dir / "PG_VERSION").exists():
            return
        self._own(self.data_dir, 0o700)
        # initdb insists on a superuser password when host auth uses passwords; nobody needs
        # it afterwards (the superuser logs in over the private socket), so it is thrown away
        with tempfile.NamedTemporaryFile("w", dir=self.socket_dir, delete=False) as pwfile:
            pwfile.write(secrets.token_urlsafe(24) + "\n")
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(pwfile.name, entry.pw_uid, entry.pw_gid)
        try:
            result = subprocess.run(  # noqa: S603  # fixed argv
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    "postgres",
                    f"--pwfile={pwfile.name}",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                ],
                capture_output=True,
                text=True,
                user=self._user(),
                check=False,
            )
        finally:
            os.unlink(pwfile.name)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a", encoding="utf-8") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(
                self.name, f"initdb failed: {result.stderr.strip()[-300:]}", str(self.log_file)
            )
        (self.data_dir / "pg_hba.conf").write_text(HBA, encoding="utf-8")

    def launch(self) -> Launch:
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
            "shared_buffers": "128MB",
            **t.PG_SERVER_SETTINGS,
        }
        argv = [str(PG_BIN / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            argv += ["-c", f"{key}={value}"]
        return Launch(argv=argv, user=self._user())

    def connect(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """A superuser connection over the private socket (autocommit)."""
        return psycopg.connect(
            host=str(self.socket_dir),
            port=self.port,
            user="postgres",
            dbname=dbname,
            connect_timeout=3,
            autocommit=True,
        )

    def check(self) -> str | None:
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return f"no answer on {self.socket_dir} port {self.port}: {str(exc).strip()[:200]}"
        return None

    def provision(self) -> None:
        pw = self.ctx.passwords
        with self.connect() as conn:
            for role, attrs in (
                (t.PSA_OWNER, "LOGIN"),
                (t.ERP_APP, "LOGIN"),
                (t.PSA_DEBEZIUM, "LOGIN REPLICATION"),
                (t.ERP_DEBEZIUM, "LOGIN REPLICATION"),
            ):
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)
                ).fetchone()
                verb = "ALTER" if exists else "CREATE"
                conn.execute(
                    sql.SQL(verb + " ROLE {} WITH " + attrs + " PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(pw[role])
                    )
                )
            for db, owner in ((t.PSA_DB, t.PSA_OWNER), (t.ERP_DB, t.ERP_APP)):
                if not conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (db,)
                ).fetchone():
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(db), sql.Identifier(owner)
                        )
                    )
                # only the owner and its Debezium user may connect
                conn.execute(
                    sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(db))
                )
            for db, dbz in ((t.PSA_DB, t.PSA_DEBEZIUM), (t.ERP_DB, t.ERP_DEBEZIUM)):
                conn.execute(
                    sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(
                        sql.Identifier(db), sql.Identifier(dbz)
                    )
                )
        with self.connect(t.PSA_DB) as conn:
            dbz_id, owner_id = sql.Identifier(t.PSA_DEBEZIUM), sql.Identifier(t.PSA_OWNER)
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(dbz_id))
            conn.execute(
                sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(dbz_id)
            )
            conn.execute(
                sql.SQL(
                    "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public "
                    "GRANT SELECT ON TABLES TO {}"
                ).format(owner_id, dbz_id)
            )
            if not conn.execute(
                "SELECT 1 FROM pg_publication WHERE pubname = %s", (t.PSA_PUBLICATION,)
            ).fetchone():
                conn.execute(
                    sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(
                        sql.Identifier(t.PSA_PUBLICATION)
                    )
                )
