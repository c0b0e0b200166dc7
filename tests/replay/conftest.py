"""The replay tier: ``billsync run --from-file`` in subprocesses, killed and restarted.

No services (SQLite files and a capture in a temporary directory), but minutes, not
seconds: marker ``replay``, run by ``make test`` and not by ``make test-unit``.
"""

from __future__ import annotations
