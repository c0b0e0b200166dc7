"""Serve the dashboard on 127.0.0.1: ``/`` (HTML), ``/api/summary`` (JSON), ``/health``."""

from __future__ import annotations

from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from ops.reads.dashboard.page import render


def _json_default(obj: Any) -> Any:
    return str(obj)  # Decimal amounts as exact text


def make_server(
    port: int, summary: Callable[[], dict[str, Any]], host: str = "127.0.0.1"
) -> ThreadingHTTPServer:
    """A server whose every request computes a fresh summary (cheap queries, no cache)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/":
                self._send(200, "text/html; charset=utf-8", render(summary()).encode())
            elif path == "/api/summary":
                body = orjson.dumps(summary(), default=_json_default, option=orjson.OPT_INDENT_2)
                self._send(200, "application/json", body)
            elif path == "/health":
                self._send(200, "application/json", b'{"status":"ok"}')
            else:
                self._send(404, "text/plain", b"/, /api/summary or /health\n")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return ThreadingHTTPServer((host, port), Handler)
