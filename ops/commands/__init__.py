"""Sub-command groups of the `billsync` CLI, one module each."""
