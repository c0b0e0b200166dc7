"""The source databases of SPEC section 1 as the PSA and CRM teams would have them.

``tables`` holds the SQLAlchemy metadata (PostgreSQL ``psa`` and MariaDB ``crm``), ``install``
creates it idempotently, ``generate`` produces deterministic demo rows as pure functions and
``load`` bulk-loads them. See ``README.md`` for the decisions and measured load rates.
"""
