"""The replay tier: ``billsync run --from-file`` in subprocesses, killed and restarted.

No services (SQLite files and a capture in a temporary directory), but minutes, not
seconds: marker ``replay``, run by ``make test`` and not by ``make test-unit``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.replay)
