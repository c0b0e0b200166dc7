"""Delivery-checked Kafka outputs: Avro in the Confluent wire format, idempotent producer."""
