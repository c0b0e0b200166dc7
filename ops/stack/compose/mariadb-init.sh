#!/bin/bash
# docker-compose only: the Debezium user of the mariadb:10.11 container, as ops/stack/mariadb.py
# creates it locally (database crm and crm_owner come from MARIADB_DATABASE / MARIADB_USER).
set -euo pipefail
mariadb -uroot -p"$MARIADB_ROOT_PASSWORD" <<SQL
CREATE USER IF NOT EXISTS 'debezium_crm'@'%' IDENTIFIED BY '${DEBEZIUM_CRM_PASSWORD}';
GRANT SELECT, RELOAD, SHOW DATABASES, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO 'debezium_crm'@'%';
SQL
