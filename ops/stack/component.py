"""What every component of the local stack provides to the launcher."""

from __future__ import annotations

import abc
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from billsync.settings import Settings
from ops.stack.paths import StackPaths


@dataclass(frozen=True)
class StackContext:
    settings: Settings
    paths: StackPaths
    passwords: Mapping[str, str]


@dataclass(frozen=True)
class Launch:
    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None


@dataclass
class Component(abc.ABC):
    ctx: StackContext
    name: ClassVar[str]
    # seconds from spawn to healthy before `up` gives up (2 cores: JIT warm-up is slow)
    start_timeout: ClassVar[float] = 180.0
    stop_signal: ClassVar[int] = signal.SIGTERM
    notes: list[str] = field(default_factory=list)

    @property
    @abc.abstractmethod
    def port(self) -> int: ...

    @property
    def log_file(self) -> Path:
        return self.ctx.paths.log_file(self.name)

    @property
    def data_dir(self) -> Path:
        return self.ctx.paths.data_of(self.name)

    def prepare(self) -> None:  # noqa: B027  # optional hook, a no-op by default
        """Create data directories and configs; idempotent."""

    @abc.abstractmethod
    def launch(self) -> Launch: ...

    @abc.abstractmethod
    def check(self) -> str | None:
        """None when healthy, else why not (one line)."""

    def provision(self) -> None:  # noqa: B027  # optional hook: only the databases provision
        """Create databases, users, grants once the component is healthy; idempotent."""
