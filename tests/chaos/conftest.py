"""chaos tier: fault injection against the real stack (SPEC section 4).

Every test collected here gets the ``chaos`` and ``integration`` markers (tests/conftest.py).
Fixtures are the e2e tier's (``tests/e2e/conftest.py``), re-exported: ``stack`` (session
stack, reused or started once), ``prefix`` (own ids), ``sources`` (own rows, deleted at the
end), ``make_flow`` (own ``billsync run`` with its own ERP schema, recovery dir and metrics
port) and ``erp_of``. This file adds ``load``: a :class:`tests.chaos.load.Load` on the test's own
world, stopped at the end of the test; and ``healed``: whatever the test did, every stack
component runs again at its end.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billsync.settings import Settings
from ops.stack import launcher
from tests.chaos.load import Load
from tests.e2e.conftest import erp_of, make_flow, prefix, sources, stack
from tests.e2e.harness import Sources

__all__ = ["erp_of", "make_flow", "prefix", "sources", "stack"]  # fixtures of the e2e tier


@pytest.fixture
def load(sources: Sources, prefix: str) -> Iterator[Load]:
    made = Load(sources, prefix)
    yield made
    made.stop()


@pytest.fixture
def healed(stack: Settings) -> Iterator[None]:
    """Whatever happens in the test, leave every component running and healthy."""
    yield
    ctx = launcher.context(stack, create_secrets=False)
    for name, component in launcher.components(ctx).items():
        if launcher.running(component) is None:
            launcher.start(component, lambda _c, _m: None)
            print(f"teardown: started {name} again")
