#!/bin/sh
# Run once by the official postgres image on an empty data directory: one database and one
# role per service, each role owning its database and nothing else.
set -eu

for service in enrolment financing export outcomes; do
    variable="ENVOL_DB_PASSWORD_$(echo "$service" | tr '[:lower:]' '[:upper:]')"
    password=$(printenv "$variable" || true)
    if [ -z "$password" ]; then
        echo "init-databases: $variable is not set" >&2
        exit 1
    fi
    psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
        -v role="$service" -v password="$password" <<'SQL'
CREATE ROLE :"role" LOGIN PASSWORD :'password';
CREATE DATABASE :"role" OWNER :"role";
REVOKE ALL ON DATABASE :"role" FROM PUBLIC;
SQL
done
