#!/bin/bash
# Run once by the postgres image's entrypoint on an empty data folder (/docker-entrypoint-initdb.d): the application's
# role kvmesh with its own password (KVMESH_PG_PASSWORD, from .env) and its database. The superuser is postgres, with
# POSTGRES_PASSWORD; every connection authenticates with scram-sha-256 (POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD).
set -euo pipefail
: "${KVMESH_PG_PASSWORD:?KVMESH_PG_PASSWORD is not set}"
psql -v ON_ERROR_STOP=1 -v app_password="$KVMESH_PG_PASSWORD" --username "$POSTGRES_USER" --dbname postgres <<'SQL'
SET password_encryption = 'scram-sha-256';
CREATE ROLE kvmesh LOGIN CREATEDB PASSWORD :'app_password';
CREATE DATABASE kvmesh OWNER kvmesh ENCODING 'UTF8';
SQL
