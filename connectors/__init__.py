"""Debezium connector configurations as code, and the Connect REST client."""
