"""Generated passwords of the local stack and the ``stack.env`` file built from them.

Passwords are created on the first ``billsync stack up`` into ``<stack_dir>/secrets.json``
(mode 0600), never committed and never printed except by ``billsync stack env``.
"""

from __future__ import annotations

import json
import os
import secrets as _random
from pathlib import Path
from urllib.parse import quote

from billsync.settings import Settings
from ops.stack import topology as t
from ops.stack.paths import StackPaths

# one password per database login the stack creates
ACCOUNTS = (
    t.PSA_OWNER,
    t.PSA_DEBEZIUM,
    t.ERP_APP,
    t.ERP_DEBEZIUM,
    t.CRM_OWNER,
    t.CRM_DEBEZIUM,
)


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(path, 0o600)


def load_or_create(paths: StackPaths) -> dict[str, str]:
    """The stack's passwords, generating (and saving) any that do not exist yet."""
    existing: dict[str, str] = {}
    if paths.secrets.exists():
        existing = json.loads(paths.secrets.read_text(encoding="utf-8"))
    missing = [a for a in ACCOUNTS if a not in existing]
    if missing:
        for account in missing:
            # URL-safe alphabet: the passwords go into SQLAlchemy URLs and config files
            existing[account] = _random.token_urlsafe(24)
        _write_private(paths.secrets, json.dumps(existing, indent=2, sort_keys=True) + "\n")
    return existing


def connection_env(settings: Settings, passwords: dict[str, str]) -> dict[str, str]:
    """The six connection variables of SPEC section 5 for the local stack."""

    def pw(account: str) -> str:
        return quote(passwords[account], safe="")

    host = "127.0.0.1"
    return {
        "PSA_DB_URL": (
            f"postgresql+psycopg://{t.PSA_OWNER}:{pw(t.PSA_OWNER)}@{host}:{settings.pg_port}/"
            f"{t.PSA_DB}"
        ),
        "CRM_DB_URL": (
            f"mysql+pymysql://{t.CRM_OWNER}:{pw(t.CRM_OWNER)}@{host}:{settings.mariadb_port}/"
            f"{t.CRM_DB}"
        ),
        "ERP_DB_URL": (
            f"postgresql+psycopg://{t.ERP_APP}:{pw(t.ERP_APP)}@{host}:{settings.pg_port}/{t.ERP_DB}"
        ),
        "KAFKA_BOOTSTRAP": f"{host}:{settings.kafka_port}",
        "SCHEMA_REGISTRY_URL": f"http://{host}:{settings.apicurio_port}{t.CCOMPAT_PATH}",
        "CONNECT_URL": f"http://{host}:{settings.connect_port}",
    }


def write_env_file(paths: StackPaths, env: dict[str, str]) -> None:
    """``<stack_dir>/stack.env``: the same lines as ``stack env`` without ``export`` (0600)."""
    _write_private(paths.env_file, "".join(f"{k}={v}\n" for k, v in env.items()))
