"""Reference mapping files finance edits (CSV with a header row).

Read by ``dataflows.billing.mappings``; a package so the files ship with billsync.
"""
