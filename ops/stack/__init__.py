"""The local CDC stack as plain processes: PostgreSQL, MariaDB, Kafka (KRaft), Kafka Connect with
Debezium, Apicurio Registry. See ops/README.md. Entry points live in :mod:`ops.stack.launcher`."""
