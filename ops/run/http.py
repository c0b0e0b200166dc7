"""The flow's HTTP endpoint on 127.0.0.1: ``/metrics`` (Prometheus) and ``/health``.

``/health`` answers 200 and JSON when the flow has started and the ERP answers ``SELECT 1``,
503 with the same JSON otherwise, so a supervisor or load balancer can act on the code alone.
Stdlib ``ThreadingHTTPServer`` in a daemon thread: no dependency, it dies with the flow.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import Engine, text


@dataclass
class Health:
    engine: Engine | None = None
    flow_started: bool = False
    started_at: float = field(default_factory=time.time)

    def check(self) -> tuple[bool, dict[str, Any]]:
        erp = "not configured"
        erp_ok = False
        if self.engine is not None:
            try:
                with self.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                erp, erp_ok = "ok", True
            except Exception as exc:  # the report says why; /health must answer
                erp = f"{exc.__class__.__name__}: {str(exc)[:200]}"
        ok = self.flow_started and erp_ok
        return ok, {
            "status": "ok" if ok else "unavailable",
            "flow_started": self.flow_started,
            "erp": erp,
            "uptime_s": round(time.time() - self.started_at, 1),
        }


def serve(port: int, health: Health, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Start serving in a daemon thread; returns the server (``.shutdown()`` to stop)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
            elif path == "/health":
                ok, body = health.check()
                self._send(200 if ok else 503, "application/json", orjson.dumps(body))
            else:
                self._send(404, "text/plain", b"/metrics or /health\n")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return  # scrapes every few seconds would flood the flow's output

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="billsync-http", daemon=True).start()
    return server
