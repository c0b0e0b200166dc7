"""MariaDB 10.11 from Debian as a private server: own datadir, port, socket; database crm.

Binlog settings for Debezium come from ``topology.MARIADB_SERVER_SETTINGS``. ``root`` is
authenticated by the unix socket only (``mariadb-install-db`` default), so provisioning needs
no password; the two application users log in over TCP on 127.0.0.1 with generated passwords.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import ClassVar

from billsync.errors import StackError
from ops.stack import topology as t
from ops.stack.component import Component, Launch

SYSTEM_USER = "mysql"
MARIADBD = "/usr/sbin/mariadbd"
CLIENT = "/usr/bin/mariadb"
INSTALL_DB = "/usr/bin/mariadb-install-db"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class MariaDB(Component):
    name: ClassVar[str] = "mariadb"
    start_timeout: ClassVar[float] = 60.0

    @property
    def port(self) -> int:
        return self.ctx.settings.mariadb_port

    @property
    def socket_dir(self) -> Path:
        return self.ctx.paths.db_root / "mariadb-run"

    @property
    def cnf(self) -> Path:
        return self.ctx.paths.conf / "mariadb.cnf"

    def _own(self, path: Path, mode: int) -> None:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            entry = pwd.getpwnam(SYSTEM_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)
        os.chmod(path, mode)

    def _write_cnf(self) -> None:
        lines = [
            "# written by billsync stack up",
            "[mysqld]",
            f"datadir = {self.data_dir}",
            f"socket = {self.socket_dir / 'mariadb.sock'}",
            f"pid-file = {self.socket_dir / 'mariadb.pid'}",
            f"port = {self.port}",
            "bind-address = 127.0.0.1",
            "skip-name-resolve",
            "innodb_buffer_pool_size = 128M",
            "character-set-server = utf8mb4",
            "collation-server = utf8mb4_unicode_ci",
        ]
        if os.geteuid() == 0:
            lines.append(f"user = {SYSTEM_USER}")
        lines += [f"{k} = {v}" for k, v in t.MARIADB_SERVER_SETTINGS.items()]
        lines += ["", "[client]", f"socket = {self.socket_dir / 'mariadb.sock'}", ""]
        self.cnf.parent.mkdir(parents=True, exist_ok=True)
        self.cnf.write_text("\n".join(lines), encoding="utf-8")

    def prepare(self) -> None:
        if not os.path.exists(MARIADBD):
            raise StackError(self.name, "mariadbd not found (apt package mariadb-server)")
        self._write_cnf()
        self._own(self.socket_dir, 0o750)
        if (self.data_dir / "mysql").exists():
            return
        self._own(self.data_dir, 0o750)
        argv = [
            INSTALL_DB,
            f"--defaults-file={self.cnf}",  # must be the first option
            "--skip-test-db",
            "--auth-root-authentication-method=socket",
        ]
        if os.geteuid() == 0:
            argv.append(f"--user={SYSTEM_USER}")
        result = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603  # fixed argv
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("a", encoding="utf-8") as log:
            log.write(result.stdout + result.stderr)
        if result.returncode != 0:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            raise StackError(
                self.name,
                f"mariadb-install-db failed: {result.stderr.strip()[-300:]}",
                str(self.log_file),
            )

    def launch(self) -> Launch:
        return Launch(argv=[MARIADBD, f"--defaults-file={self.cnf}"])

    def sql(self, statements: str) -> subprocess.CompletedProcess[str]:
        """Run SQL as root over the private socket (statements on stdin, never in argv)."""
        return subprocess.run(  # noqa: S603  # fixed argv
            [CLIENT, f"--defaults-file={self.cnf}", "-uroot", "--batch", "--skip-column-names"],
            input=statements,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def check(self) -> str | None:
        result = self.sql("SELECT 1;")
        if result.returncode != 0 or result.stdout.strip() != "1":
            return f"no answer on {self.socket_dir} port {self.port}: {result.stderr.strip()[:200]}"
        return None

    def provision(self) -> None:
        pw = self.ctx.passwords
        grants = ", ".join(t.CRM_DEBEZIUM_GRANTS)
        statements = [f"CREATE DATABASE IF NOT EXISTS `{t.CRM_DB}`;"]
        for user in (t.CRM_OWNER, t.CRM_DEBEZIUM):
            statements += [
                f"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY {_quote(pw[user])};",
                f"ALTER USER '{user}'@'%' IDENTIFIED BY {_quote(pw[user])};",
            ]
        statements += [
            # the owner grants Debezium the signal table (billsync db init)
            f"GRANT ALL PRIVILEGES ON `{t.CRM_DB}`.* TO '{t.CRM_OWNER}'@'%' WITH GRANT OPTION;",
            f"GRANT {grants} ON *.* TO '{t.CRM_DEBEZIUM}'@'%';",
        ]
        result = self.sql("\n".join(statements))
        if result.returncode != 0:
            raise StackError(
                self.name, f"provisioning failed: {result.stderr.strip()[:300]}", str(self.log_file)
            )
