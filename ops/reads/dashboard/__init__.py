"""The operator/finance dashboard: one server-rendered HTML page and a JSON summary.

``summary.py`` gathers the figures (ERP queries of :mod:`ops.reads.queries`, and lag / latency
scraped from the flow's ``/metrics`` when it is reachable); ``page.py`` renders them as HTML
with inline SVG bar charts (no JavaScript, no chart library); ``server.py`` serves ``/``,
``/api/summary`` and ``/health`` on 127.0.0.1 with the standard library's HTTP server.
"""
