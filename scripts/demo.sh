#!/usr/bin/env bash
# One command to a working demo: PostgreSQL found or started (installed
# when missing and run as root), a `botora` database, migrations, two demo
# tenants and a lapsed one, a self-signed certificate, and the server on
# http://127.0.0.1:8000 and https://127.0.0.1:8443. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/postgres.sh
ensure_postgres

database=${BOTORA_DEMO_DB:-botora}
if command -v psql >/dev/null 2>&1; then
    exists=$(psql -qAt "$DATABASE_URL" -c "SELECT 1 FROM pg_database WHERE datname = '$database'")
    [ "$exists" = 1 ] || psql -q "$DATABASE_URL" -c "CREATE DATABASE \"$database\""
fi
export BOTORA_DATABASE_URL
BOTORA_DATABASE_URL=$(url_for_db "$database")

cargo build --release --bin botora
exec ./target/release/botora --config config.toml demo
