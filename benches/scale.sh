#!/usr/bin/env bash
# Scale benchmarks (issue 5): what grows with the number of tenants.
#
#   benches/scale.sh
#
# 1. `botora migrate` over 1,000 tenant schemas: with nothing pending
#    (three runs), then with one new migration adding a column and an
#    index (a binary built with the `bench-migration` feature).
# 2. Tenant creation through `POST /api/tenants/`: 20 creations, median.
# 3. Peak RSS of a Botora that has resolved 100,000 tenants once each.
#
# Prints a markdown table, also written to bench-results/scale-<date>.md.
#
# Environment (defaults in brackets):
#   DATABASE_URL     a PostgreSQL server's URL [postgres://postgres@127.0.0.1:5432/postgres]
#   SCHEMAS          tenant schemas for the migrate runs [1000]
#   RESOLVED         tenants resolved for the memory figure [100000]
#   PORT_BASE        first of two consecutive ports [18500]
#   KEEP=1           keep the database and the work directory afterwards
#
# Needs cargo, psql, curl, jq and python3.

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
SCHEMAS=${SCHEMAS:-1000}
RESOLVED=${RESOLVED:-100000}
PORT_BASE=${PORT_BASE:-18500}
SCALE_DB=botora_scale
PASSWORD=scale-password-1
PORT=$PORT_BASE
ADMIN_PORT=$((PORT_BASE + 1))
WORK=$(mktemp -d /tmp/botora-scale.XXXXXX)
BOTORA="$ROOT/target/release/botora"
BOTORA_NEXT="$WORK/botora-next"
CONFIG="$WORK/config.toml"
ROWS="$WORK/rows.md"
SERVER_PID=

unset BOTORA_CONFIG BOTORA_LISTEN BOTORA_ADMIN_LISTEN BOTORA_DATABASE_URL \
    BOTORA_SIGNING_KEY RUST_LOG

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'scale.sh: %s\n' "$*" >&2; exit 1; }
row() { printf '| %s | %s | %s |\n' "$@" >>"$ROWS"; }

SCALE_URL="${DATABASE_URL%/*}/$SCALE_DB"

cleanup() {
    local status=$?
    [[ -n $SERVER_PID ]] && kill "$SERVER_PID" 2>/dev/null && wait "$SERVER_PID" 2>/dev/null
    if [[ ${KEEP:-0} != 1 ]]; then
        psql "$DATABASE_URL" -qX -c "DROP DATABASE IF EXISTS $SCALE_DB WITH (FORCE)" \
            >/dev/null 2>&1 || true
        rm -rf "$WORK"
    else
        say "kept database $SCALE_DB and $WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The release binary, and a copy built with one more tenant migration.
build() {
    say "building release binaries"
    (cd "$ROOT" && cargo build --release --quiet --features bench-migration --bin botora)
    cp "$BOTORA" "$BOTORA_NEXT"
    (cd "$ROOT" && cargo build --release --quiet --bin botora)
}

write_config() {
    cat >"$CONFIG" <<EOF
[server]
listen = "127.0.0.1:$PORT"

[database]
url = "$SCALE_URL"

[tenancy]
public_hosts = ["admin.scale"]
cache_capacity = $((RESOLVED * 2))

[auth]
signing_key = "scale-benchmark-signing-key-long-enough-for-hs256"
password_iterations = 1000

[log]
level = "warn"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"
EOF
}

fresh_database() {
    psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $SCALE_DB WITH (FORCE)" \
        -c "CREATE DATABASE $SCALE_DB" >/dev/null
    "$BOTORA" -c "$CONFIG" migrate >/dev/null
}

# Seconds that a command took, to the millisecond.
seconds_of() {
    local started ended
    started=$(date +%s.%N)
    "$@" >/dev/null
    ended=$(date +%s.%N)
    awk -v a="$started" -v b="$ended" 'BEGIN { printf "%.3f", b - a }'
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

migrate_runs() {
    say "creating $SCHEMAS tenants with the CLI, four at a time"
    local started=$SECONDS
    seq -f 'm%04g' 1 "$SCHEMAS" | xargs -P 4 -I '{}' \
        "$BOTORA" -c "$CONFIG" tenant create --schema '{}' --name 'Scale {}' \
        --domain '{}.scale' --on-trial >/dev/null
    row "create $SCHEMAS tenants with \`botora tenant create\` (-P 4)" \
        "$((SECONDS - started)) s" "wall time, process start included"

    say "migrate with nothing pending, three times"
    local runs=() n
    for n in 1 2 3; do
        runs+=("$(seconds_of "$BOTORA" -c "$CONFIG" migrate)")
    done
    row "\`botora migrate\`, $SCHEMAS tenants, nothing pending" \
        "$(printf '%s\n' "${runs[@]}" | median) s" "median of 3: ${runs[*]} s"

    say "migrate with one new migration (a column and an index)"
    local next
    next=$(seconds_of "$BOTORA_NEXT" -c "$CONFIG" migrate)
    local done
    done=$(psql "$SCALE_URL" -qAtX -c "SELECT count(*) FROM information_schema.columns
        WHERE table_name = 'blog_post' AND column_name = 'slug'")
    [[ $done == "$SCHEMAS" ]] || die "the new column is in $done schemas, not $SCHEMAS"
    row "\`botora migrate\`, $SCHEMAS tenants, one new migration" "$next s" \
        "column and index checked in all $done schemas"
}

start_server() {
    "$BOTORA" -c "$CONFIG" serve 2>"$WORK/botora.log" &
    SERVER_PID=$!
    for _ in $(seq 100); do
        curl -fso /dev/null "http://127.0.0.1:$ADMIN_PORT/readyz" && return 0
        sleep 0.2
    done
    die "botora did not become ready (see $WORK/botora.log)"
}

stop_server() {
    kill "$SERVER_PID" && wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=
}

creation_runs() {
    say "20 tenant creations through the admin API"
    printf '%s\n' "$PASSWORD" |
        "$BOTORA" -c "$CONFIG" user create operator --superuser >/dev/null
    start_server
    local token times=() n answer
    token=$(curl -fsS -H 'Host: admin.scale' -H 'Content-Type: application/json' \
        -d "{\"username\":\"operator\",\"password\":\"$PASSWORD\"}" \
        "http://127.0.0.1:$PORT/api/token/" | jq -er .access)
    for n in $(seq -f '%02g' 1 20); do
        answer=$(curl -sS -o "$WORK/created.json" -w '%{http_code} %{time_total}' \
            -H 'Host: admin.scale' -H "Authorization: Bearer $token" \
            -H 'Content-Type: application/json' \
            -d "{\"schema_name\":\"api$n\",\"name\":\"Api $n\",\"on_trial\":true,\"domains\":[\"api$n.scale\"]}" \
            "http://127.0.0.1:$PORT/api/tenants/")
        [[ ${answer%% *} == 201 ]] || die "creation $n answered $answer: $(cat "$WORK/created.json")"
        times+=("${answer#* }")
    done
    local ms
    ms=$(printf '%s\n' "${times[@]}" | median | awk '{ printf "%.1f", $1 * 1000 }')
    row "tenant creation through \`POST /api/tenants/\`" "$ms ms" \
        "median of 20, curl's time_total (schema, tables, rows, domains)"
    stop_server
}

# Kilobytes of a process's peak and current resident set.
rss_of() { awk '/^VmHWM|^VmRSS/ { sub(":", "", $1); printf "%s=%s kB ", $1, $2 }' "/proc/$1/status"; }

memory_run() {
    say "adding $RESOLVED tenant rows (no schemas: resolution reads only public)"
    psql "$SCALE_URL" -qX -v ON_ERROR_STOP=1 >/dev/null <<EOF
INSERT INTO tenants_client (schema_name, name, paid_until, on_trial, created_on)
    SELECT 'r' || lpad(n::text, 6, '0'), 'Resolved ' || n, NULL, true, current_date
    FROM generate_series(1, $RESOLVED) AS n;
INSERT INTO tenants_domain (domain, tenant_id, is_primary)
    SELECT schema_name || '.scale', id, true FROM tenants_client WHERE schema_name LIKE 'r%';
EOF
    psql "$SCALE_URL" -qAtX -c "SELECT domain FROM tenants_domain WHERE domain LIKE 'r%'" \
        >"$WORK/hosts.txt"
    start_server
    local idle
    idle=$(rss_of "$SERVER_PID")
    say "resolving every one of them once"
    local started=$SECONDS
    python3 "$ROOT/benches/resolve_all.py" "$WORK/hosts.txt" "$PORT" >&2
    local took=$((SECONDS - started))
    local peak entries
    peak=$(awk '/^VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$SERVER_PID/status")
    entries=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" |
        awk '/^botora_tenant_resolutions_total\{outcome="found"\}/ { print $2 }')
    row "peak RSS after resolving $RESOLVED tenants once" "$peak MB" \
        "VmHWM; idle before: $idle; $entries resolutions found; ${took} s"
    stop_server
}

report() {
    local date file cpu
    date=$(date +%Y-%m-%d-%H%M%S)
    mkdir -p "$ROOT/bench-results"
    file="$ROOT/bench-results/scale-$date.md"
    cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
    {
        echo "# Scale benchmark, $date"
        echo
        echo "Machine: $(nproc) CPUs ($cpu), $(uname -sr); PostgreSQL on the same host."
        echo "Commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)."
        echo
        echo "| what | figure | how |"
        echo "|---|---:|---|"
        cat "$ROWS"
    } | tee "$file"
    say "written to $file"
}

main() {
    for tool in cargo psql curl jq python3; do
        command -v "$tool" >/dev/null || die "$tool is missing"
    done
    build
    write_config
    fresh_database
    : >"$ROWS"
    migrate_runs
    creation_runs
    memory_run
    report
}

main "$@"
