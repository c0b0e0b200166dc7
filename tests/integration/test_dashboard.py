"""The dashboard renders with data in headless Chromium (own ERP schema, own server)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import insert

from billsync.settings import Settings
from ops.reads.dashboard.server import make_server
from ops.reads.dashboard.summary import summary
from ops.reads.queries import audit_runs
from ops.reads.queries.tables import ensure
from sinks.erp import tables as t
from tests.integration.erp_schema import erp_schema
from tests.unit.queries.erp import NOW, line, snapshot


def chromium() -> str:
    """The chromium binary; installed with apt when running as root, else the test skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("chromium is not installed and installing it needs root (apt-get)")
    subprocess.run(["apt-get", "install", "-y", "chromium"], check=True, timeout=900)  # noqa: S607  # Debian's apt on PATH
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_dashboard_renders_with_data(
    stack: Settings, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    browser = chromium()
    with erp_schema(stack, unique_name("dash")) as (_url, engine):
        t.metadata.create_all(engine)
        ensure(engine)
        with engine.begin() as conn:
            conn.execute(
                insert(t.billing_line_state),
                [
                    line("1", "held", "PROJECT_ON_HOLD"),
                    line("2", "held", "PROJECT_ON_HOLD"),
                    line("3", "exception", "NO_RATE"),
                    line("4", "held", "BILLING_CAP_EXCEEDED"),
                ],
            )
            conn.execute(
                insert(t.recon_snapshots),
                [
                    snapshot("P1", "2026-01", "48210.00", "0.00"),
                    snapshot("P1", "2026-02", "51377.25", "1200.00"),
                    snapshot("P2", "2026-03", "39990.10", "350.00"),
                ],
            )
            audit_runs.record(conn, audit_runs.AuditRun(NOW, 4, 0, 2))
        server = make_server(0, lambda: summary(engine, None, lambda: 5))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}/"
            html = httpx.get(url, timeout=10).text
            api = httpx.get(url + "api/summary", timeout=10).json()
            shot = tmp_path / "dashboard.png"
            subprocess.run(  # noqa: S603  # fixed arguments
                [
                    browser,
                    "--headless",
                    "--no-sandbox",  # running as root in CI containers
                    "--disable-gpu",
                    "--hide-scrollbars",
                    "--window-size=1400,1300",
                    f"--screenshot={shot}",
                    url,
                ],
                check=True,
                capture_output=True,
                timeout=120,
            )
        finally:
            server.shutdown()
    data = shot.read_bytes()
    assert png_size(data) == (1400, 1300)
    assert len(data) > 30_000, "a blank page compresses to a few KB"
    assert 'id="holds-chart"' in html and 'id="periods-chart"' in html
    assert "PROJECT_ON_HOLD" in html and "51,377.25" in html and "2026-03" in html
    assert api["queue_lines"] == 4 and api["dlq"]["depth"] == 5
    assert api["audit"]["differences"] == 2
    assert [p["period"] for p in api["periods"]] == ["2026-01", "2026-02", "2026-03"]
