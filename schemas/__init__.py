"""Avro schemas of every topic billsync writes, and their registry operations."""
