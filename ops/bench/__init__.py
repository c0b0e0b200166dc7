"""Benchmarks behind ``billsync bench``: commands that print figures, not timed tests."""
