"""Where the local stack keeps everything: one directory (``settings.stack_dir``) plus a jar cache.

Layout of the stack directory (git-ignored)::

    secrets.json   generated passwords (0600)          stack.env   connection URLs (0600)
    run/<component>.pid                                 logs/<component>.log
    conf/          generated configs                    data/<component>/  data (``--purge``)

The database servers run as their own users (``postgres``, ``mysql``): their data dirs and
unix sockets need a path those users can traverse, and a socket path must stay under 108
bytes. When the stack directory does not allow that (a clone under a 0700 home, a deep path),
the two servers' directories move to ``/var/tmp/billsync-<hash of the stack dir>/``; ``--purge``
deletes that too.

The Maven-collected jars live in ``settings.stack_dist_dir`` (default
``~/.cache/billsync/stack-dist``), outside git and outside the stack directory, so a purge or a
fresh clone does not download them again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from billsync.settings import Settings


# one property per path: alike in shape (a duplicate scan pairs them), one fact each
@dataclass(frozen=True)
class StackPaths:
    root: Path
    dist: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> StackPaths:
        return cls(root=settings.stack_dir.resolve(), dist=settings.stack_dist_dir.expanduser())

    @property
    def secrets(self) -> Path:
        return self.root / "secrets.json"

    @property
    def env_file(self) -> Path:
        return self.root / "stack.env"

    @property
    def conf(self) -> Path:
        return self.root / "conf"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        return self.root / "run"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def db_root(self) -> Path:
        """Where PostgreSQL and MariaDB keep data and sockets (see the module doc)."""
        if _traversable(self.root) and len(str(self.data)) <= 60:
            return self.data
        return self.fallback_db_root

    @property
    def fallback_db_root(self) -> Path:
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:10]
        return Path("/var/tmp") / f"billsync-{digest}"  # noqa: S108  # fixed, per-stack name

    def data_of(self, component: str) -> Path:
        if component in ("postgres", "mariadb"):
            return self.db_root / component
        return self.data / component

    def pid_file(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"

    # --- the jar cache -------------------------------------------------------------------
    @property
    def kafka_lib(self) -> Path:
        return self.dist / "lib"

    @property
    def plugins(self) -> Path:
        return self.dist / "plugins"

    @property
    def apicurio_home(self) -> Path:
        return self.dist / "apicurio"

    @property
    def dist_stamp(self) -> Path:
        return self.dist / ".complete"


def _traversable(path: Path) -> bool:
    """Every existing directory from ``path`` up to ``/`` lets other users pass (o+x)."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents] if p.exists())
