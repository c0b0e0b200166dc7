"""Read-side SQL over the ERP tables: what finance, analysts and operators look at.

Used by ``billsync exceptions|recon report|dashboard`` and by the flow's ``/metrics``.
Amounts are summed in Python from ``Money`` columns, so sums are exact on PostgreSQL and on
SQLite (where ``Money`` is decimal text and SQL ``SUM`` would return a float). Counts are
``GROUP BY`` in SQL. The two bookkeeping tables billsync adds for operations live in
:mod:`ops.reads.queries.tables` (``recon_audit_runs``, ``dlq_replays``).
"""
