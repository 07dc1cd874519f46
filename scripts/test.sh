#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, unit and integration
# tests against a real PostgreSQL (found, or started), the schemathesis
# property test, cargo-deny and a short run of every fuzz target. Exits
# non-zero on any failure. This is what .ci/run runs. Installs what it
# lacks (cargo-deny, cargo-fuzz, schemathesis in a venv under target/).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/postgres.sh
ensure_postgres
echo "postgres: $DATABASE_URL" >&2

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings

# Databases left by earlier runs of the integration tests.
if command -v psql >/dev/null 2>&1; then
    psql -qAt "$DATABASE_URL" -c "SELECT datname FROM pg_database WHERE datname LIKE 'botora_t_%'" |
        while read -r name; do psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS \"$name\"" || true; done
fi

cargo test --all-targets
cargo test --doc

# The API against its OpenAPI document (schemathesis), then licences,
# bans and sources of every dependency (cargo-deny).
bash scripts/api-properties.sh
bash scripts/supply-chain.sh

# Every fuzz target, briefly (long runs: FUZZ_SECONDS=600 scripts/fuzz.sh).
(cd fuzz && cargo fmt -- --check)
FUZZ_SECONDS=${FUZZ_SECONDS:-20} bash scripts/fuzz.sh
