"""`billsync run` passes BILLSYNC_ERP_RETRY_S to the ERP sink; its writer retries that long.

The stall watchdog is only consistent with the writer if both use the one setting
(``billsync/settings.py`` refuses a watchdog shorter than the retry).
"""

from __future__ import annotations

from sqlalchemy import create_engine

from sinks.erp.sink import ErpSink


def test_the_erp_retry_window_reaches_the_writer() -> None:
    engine = create_engine("sqlite://")
    part = ErpSink(lambda: engine, retry_for_seconds=42.0).build_part("erp", "erp", None)
    try:
        assert part._writer._retry_for == 42.0
    finally:
        part.close()
        engine.dispose()
