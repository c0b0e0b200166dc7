"""The base every billsync package builds on, importing none of them.

``settings`` (the one frozen settings object of a process), ``errors`` (the exception root),
``logs`` (structured logging), ``model`` (typed source rows, SPEC section 1) and ``change``
(typed Debezium changes and transaction markers: what the CDC edge produces and the billing
core consumes). See ``billsync/README.md`` and ARCHITECTURE.md §7.
"""
