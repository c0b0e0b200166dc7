"""Operations: the local stack, settings, the `billsync` CLI and its commands."""
