"""Outputs: ERP tables (SQLAlchemy) and delivery-checked Kafka topics."""
