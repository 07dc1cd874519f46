#!/usr/bin/env bash
# Property-tests the HTTP API against its own OpenAPI document with
# schemathesis: a real `botora serve` on a fresh database, one run on a
# tenant host (the tenant's user) and one on the public host (a superuser).
# Checks: no 5xx, and every status, body, content type and documented
# header as the document says. Exits non-zero on any failure.
#
# Tunables (environment): API_PROPS_MAX_EXAMPLES (default 100 per
# operation), API_PROPS_SEED (default 20240601), API_PROPS_CHECKS
# (schemathesis's --checks). `all` also runs positive_data_acceptance and
# negative_data_rejection, which fail by design here: the server takes
# numbers for strings and 0/1 for booleans as DRF does, and the edge days
# injected below are refused although they fit `format: date`.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/postgres.sh
export PGOPTIONS="-c client_min_messages=warning"
ensure_postgres
echo "postgres: $DATABASE_URL" >&2

SCHEMATHESIS_VERSION=4.32.5
VENV=target/schemathesis-venv
REPORTS=target/api-properties
DB_NAME=botora_api_props
MAX_EXAMPLES=${API_PROPS_MAX_EXAMPLES:-100}
SEED=${API_PROPS_SEED:-20240601}
PASSWORD=props-password
TENANT_HOST=props.test
PUBLIC_HOST=localhost
CHECKS=not_a_server_error,status_code_conformance,response_schema_conformance
CHECKS=${API_PROPS_CHECKS:-$CHECKS,content_type_conformance,response_headers_conformance}

WORK=$(mktemp -d)
SERVER_PID=

# Stops the server and drops the database, whatever happened.
# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
    local status=$?
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null 2>&1 ||
        echo "api-properties: could not drop $DB_NAME" >&2
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# 1. schemathesis, pinned, in a venv kept between runs.
if ! "$VENV/bin/schemathesis" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
    echo "api-properties: installing schemathesis $SCHEMATHESIS_VERSION into $VENV" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

# 2. The server binary.
cargo build --quiet --bin botora
BOTORA=target/debug/botora

# 3. A fresh database and a config for it.
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}
HTTP_PORT=$(free_port)
ADMIN_PORT=$(free_port)
psql -q "$DATABASE_URL" -c "DROP DATABASE IF EXISTS $DB_NAME WITH (FORCE)" >/dev/null
psql -q "$DATABASE_URL" -c "CREATE DATABASE $DB_NAME" >/dev/null
CONFIG=$WORK/config.toml
cat >"$CONFIG" <<EOF
[server]
listen = "127.0.0.1:$HTTP_PORT"

[database]
url = "$(url_for_db "$DB_NAME")"

[tenancy]
public_hosts = ["$PUBLIC_HOST"]

[auth]
signing_key = "api-properties-signing-key-0123456789abcdef"
access_lifetime = "1h"
password_iterations = 1000

[log]
level = "warn"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"
EOF
export BOTORA_CONFIG=$CONFIG

# 4. Tables; a tenant with two users (one's posts are the other's to
# refuse, 403); spare tenants for the operators' run; an operator.
"$BOTORA" migrate >/dev/null
"$BOTORA" tenant create --schema props --name Props --domain "$TENANT_HOST" --on-trial >/dev/null
for n in 1 2 3; do
    "$BOTORA" tenant create --schema "spare$n" --name "Spare $n" --paid-until 2099-12-31 \
        --domain "spare$n.test" --domain "alt.spare$n.test" >/dev/null
done
echo "$PASSWORD" | "$BOTORA" user create writer --tenant props --email writer@props.test >/dev/null
echo "$PASSWORD" | "$BOTORA" user create other --tenant props >/dev/null
echo "$PASSWORD" | "$BOTORA" user create root --superuser >/dev/null

# 5. The server, up once the document answers.
"$BOTORA" serve >"$WORK/server.log" 2>&1 &
SERVER_PID=$!
BASE=http://127.0.0.1:$HTTP_PORT
up=false
for _ in $(seq 1 100); do
    curl -sf -o /dev/null -H "Host: $PUBLIC_HOST" "$BASE/api/schema/" && { up=true; break; }
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if [ "$up" != true ]; then
    echo "api-properties: the server did not come up:" >&2
    cat "$WORK/server.log" >&2
    exit 1
fi

# Prints the token pair of `user` on `host` as "ACCESS REFRESH".
login() {
    local host=$1 user=$2
    curl -sf -H "Host: $host" -H 'Content-Type: application/json' \
        -d "{\"username\": \"$user\", \"password\": \"$PASSWORD\"}" "$BASE/api/token/" |
        python3 -c 'import json, sys; pair = json.load(sys.stdin)
print(pair["access"], pair["refresh"])'
}

# Posts a post as the holder of `token`.
post() {
    local token=$1 title=$2
    curl -sf -o /dev/null -H "Host: $TENANT_HOST" -H "Authorization: Bearer $token" \
        -H 'Content-Type: application/json' \
        -d "{\"title\": \"$title\", \"body\": \"Body of $title.\"}" "$BASE/api/posts/"
}

# 6. Tokens, and a few posts by each tenant user.
pair=$(login "$TENANT_HOST" writer)
read -r WRITER WRITER_REFRESH <<<"$pair"
pair=$(login "$TENANT_HOST" other)
read -r OTHER _ <<<"$pair"
pair=$(login "$PUBLIC_HOST" root)
read -r ROOT ROOT_REFRESH <<<"$pair"
for n in 1 2 3 4 5; do post "$WRITER" "Writer post $n"; done
for n in 1 2; do post "$OTHER" "Other post $n"; done

# Writes the schemathesis config of one host. Half of the generated path
# parameters and credentials name things that exist, so the tests reach
# past the 404s and 401s, and some days sit at the edges of the range;
# the rest stay random.
write_config() {
    local path=$1 user=$2 access=$3 refresh=$4
    cat >"$path" <<EOF
# No crash cache: a run depends on the seed alone, and writes nothing
# outside target/.
[cache]
enabled = false

[dictionaries.post_ids]
values = [1, 2, 3, 4, 5, 6, 7]

[dictionaries.schemas]
values = ["props", "spare1", "spare2", "spare3"]

[dictionaries.domains]
values = ["spare1.test", "alt.spare1.test", "spare2.test", "alt.spare2.test", "alt.spare3.test"]

# Days at and past the ends of Django's range (years 1 to 9999), and
# signed years, which chrono reads and PostgreSQL may refuse.
[dictionaries.days]
values = ["9999-12-31", "0000-01-01", "+10000-01-01", "-4714-01-01"]

[dictionaries.usernames]
values = ["$user"]

[dictionaries.passwords]
values = ["$PASSWORD"]

[dictionaries.refresh_tokens]
values = ["$refresh"]

[dictionaries.tokens]
values = ["$access", "$refresh"]

[parameters]
"path.id" = { dictionary = "post_ids", probability = 0.5 }
"path.schema" = { dictionary = "schemas", probability = 0.5 }
"path.domain" = { dictionary = "domains", probability = 0.5 }
"body.paid_until" = { dictionary = "days", probability = 0.5 }
"body.username" = { dictionary = "usernames", probability = 0.5 }
"body.password" = { dictionary = "passwords", probability = 0.5 }
"body.refresh" = { dictionary = "refresh_tokens", probability = 0.5 }
"body.token" = { dictionary = "tokens", probability = 0.5 }
EOF
}

# Runs schemathesis on `host` as `user` over the operations tagged `tag`;
# prints the test cases it ran. Returns schemathesis's status.
run_schemathesis() {
    local label=$1 host=$2 tag=$3 user=$4 access=$5 refresh=$6 status=0 cases
    local output=$WORK/schemathesis-$label.txt config=$WORK/schemathesis-$label.toml
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        echo "api-properties: the server is gone; not running the $label host" >&2
        return 1
    fi
    write_config "$config" "$user" "$access" "$refresh"
    echo "api-properties: schemathesis on the $label host ($host)" >&2
    "$VENV/bin/schemathesis" --config-file "$config" run "$BASE/api/schema/" \
        --url "$BASE" \
        --header "Host: $host" \
        --header "Authorization: Bearer $access" \
        --include-tag "$tag" \
        --checks "$CHECKS" \
        --max-examples "$MAX_EXAMPLES" \
        --seed "$SEED" \
        --generation-database none \
        --workers 1 \
        --no-color \
        --report ndjson --report-ndjson-path "$REPORTS/$label.ndjson" \
        >"$output" 2>&1 || status=$?
    cat "$output"
    cases=$(grep -A1 '^Test cases:' "$output" | grep -Eo '[0-9]+ generated' || true)
    echo "api-properties: $label host ($host): ${cases:-unknown} test cases, exit $status"
    return "$status"
}

# 7. Both hosts; a failure on the first still runs the second.
failed=0
run_schemathesis tenant "$TENANT_HOST" tenant writer "$WRITER" "$WRITER_REFRESH" || failed=1
run_schemathesis public "$PUBLIC_HOST" operators root "$ROOT" "$ROOT_REFRESH" || failed=1
if [ -s "$WORK/server.log" ]; then
    echo "api-properties: server log (warn and above):" >&2
    cat "$WORK/server.log" >&2
fi
exit "$failed"
