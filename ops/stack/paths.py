"""Where the local stack keeps everything: one directory (``settings.stack_dir``) plus a jar cache.

Layout of the stack directory (git-ignored)::

    secrets.json   generated passwords (0600)          stack.env   connection URLs (0600)
    run/<component>.pid                                 logs/<component>.log
    conf/          generated configs                    data/<component>/  data (``--purge``)

The Maven-collected jars live in ``settings.stack_dist_dir`` (default
``~/.cache/billsync/stack-dist``), outside git and outside the stack directory, so a purge or a
fresh clone does not download them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ops.settings import Settings


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

    def data_of(self, component: str) -> Path:
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
