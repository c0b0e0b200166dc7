#!/bin/bash
# docker-compose only: provisions the postgres:15 container like ops/stack/postgres.py does
# for the local cluster (names from ops/stack/topology.py; tests/unit/test_compose.py checks).
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
  -v psa_owner_pw="$PSA_OWNER_PASSWORD" \
  -v debezium_psa_pw="$DEBEZIUM_PSA_PASSWORD" \
  -v debezium_erp_pw="$DEBEZIUM_ERP_PASSWORD" \
  -v erp_app_pw="$ERP_APP_PASSWORD" <<'SQL'
CREATE ROLE psa_owner WITH LOGIN PASSWORD :'psa_owner_pw';
CREATE ROLE erp_app WITH LOGIN PASSWORD :'erp_app_pw';
CREATE ROLE debezium_psa WITH LOGIN REPLICATION PASSWORD :'debezium_psa_pw';
CREATE ROLE debezium_erp WITH LOGIN REPLICATION PASSWORD :'debezium_erp_pw';
CREATE DATABASE psa OWNER psa_owner;
CREATE DATABASE erp OWNER erp_app;
REVOKE ALL ON DATABASE psa FROM PUBLIC;
REVOKE ALL ON DATABASE erp FROM PUBLIC;
GRANT CONNECT ON DATABASE psa TO debezium_psa;
-- the erp connector's grants and publication come from `billsync db init` (run as erp_app)
GRANT CONNECT ON DATABASE erp TO debezium_erp;
\connect psa
GRANT USAGE ON SCHEMA public TO debezium_psa;
ALTER DEFAULT PRIVILEGES FOR ROLE psa_owner IN SCHEMA public GRANT SELECT ON TABLES TO debezium_psa;
CREATE PUBLICATION billsync_psa FOR ALL TABLES;
SQL
