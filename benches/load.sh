#!/usr/bin/env bash
# Load benchmark of Botora beside its baseline (issue 5).
#
# Builds the release binaries, fills a fresh database `botora_bench` with
# 100 tenants (one user and 50 posts each), starts Botora, the baseline
# floor and the fixed-body ceiling on their own ports, then runs each
# scenario with wrk, Botora and its reference in turn (A B A B), and prints
# a markdown table that is also written to bench-results/load-<date>.md.
#
#   benches/load.sh
#
# Environment (defaults in brackets):
#   DATABASE_URL  a PostgreSQL server's URL [postgres://postgres@127.0.0.1:5432/postgres]
#   DURATION      length of each measured run [10s]
#   ROUNDS        A B pairs per scenario [2]
#   THREADS, CONNECTIONS   wrk's -t and -c [2, 32]
#   PORT_BASE     first of four consecutive ports [18400]
#   KEEP=1        keep the database and the work directory afterwards
#
# Everything started here is stopped on exit. Needs cargo, psql, curl, jq
# and wrk (installed with apt-get when missing and running as root).

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
PORT_BASE=${PORT_BASE:-18400}
TENANTS=100
POSTS_PER_TENANT=50
BENCH_DB=botora_bench
PASSWORD=bench-password-1

BOTORA_PORT=$PORT_BASE
ADMIN_PORT=$((PORT_BASE + 1))
BASELINE_PORT=$((PORT_BASE + 2))
FIXED_PORT=$((PORT_BASE + 3))
BOTORA="$ROOT/target/release/botora"
BASELINE="$ROOT/target/release/botora-baseline"
WORK=$(mktemp -d /tmp/botora-bench.XXXXXX)
CONFIG="$WORK/config.toml"
HOSTS="$WORK/hosts.txt"
RESULTS="$WORK/results.tsv"
STARTED_AT=$SECONDS
PIDS=()

# The environment must not override the bench config.
unset BOTORA_CONFIG BOTORA_LISTEN BOTORA_ADMIN_LISTEN BOTORA_DATABASE_URL \
    BOTORA_SIGNING_KEY RUST_LOG

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'load.sh: %s\n' "$*" >&2; exit 1; }

# The URL of database $1 on the server of DATABASE_URL.
url_of_db() {
    local query=""
    [[ $DATABASE_URL == *\?* ]] && query="?${DATABASE_URL#*\?}"
    local base=${DATABASE_URL%%\?*}
    printf '%s/%s%s' "${base%/*}" "$1" "$query"
}
BENCH_URL=$(url_of_db "$BENCH_DB")

cleanup() {
    local status=$?
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [[ ${KEEP:-0} != 1 ]]; then
        psql "$DATABASE_URL" -qX -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" \
            >/dev/null 2>&1 || true
        rm -rf "$WORK"
    else
        say "kept database $BENCH_DB and $WORK"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

check_tools() {
    if ! command -v wrk >/dev/null; then
        [[ $(id -u) == 0 ]] || die "wrk is missing; install it (apt-get install wrk)"
        say "installing wrk"
        apt-get install -y wrk >/dev/null
    fi
    for tool in cargo psql curl jq; do
        command -v "$tool" >/dev/null || die "$tool is missing"
    done
}

build() {
    say "building release binaries"
    (cd "$ROOT" && cargo build --release --quiet --bin botora)
    (cd "$ROOT" && cargo build --release --quiet --features baseline --bin botora-baseline)
}

write_config() {
    cat >"$CONFIG" <<EOF
[server]
listen = "127.0.0.1:$BOTORA_PORT"
max_connections = 100000

[database]
url = "$BENCH_URL"
pool_size = 16

[tenancy]
public_hosts = ["admin.bench"]

[auth]
signing_key = "load-benchmark-signing-key-long-enough-for-hs256"
access_lifetime = "1h"
password_iterations = 1000

[api]
page_size = 20

[log]
level = "warn"

[admin]
listen = "127.0.0.1:$ADMIN_PORT"
EOF
}

# A fresh database with 100 tenants, one user and 50 posts each.
fill_database() {
    say "creating database $BENCH_DB"
    psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" \
        -c "CREATE DATABASE $BENCH_DB" >/dev/null
    "$BOTORA" -c "$CONFIG" migrate >/dev/null

    # Tenants through the CLI, four at a time.
    say "creating $TENANTS tenants"
    seq -f 't%03g' 1 "$TENANTS" | xargs -P 4 -I '{}' \
        "$BOTORA" -c "$CONFIG" tenant create --schema '{}' --name 'Bench {}' \
        --domain '{}.bench' --on-trial >/dev/null

    # One user through the CLI; its hash is copied to every other tenant.
    printf '%s\n' "$PASSWORD" |
        "$BOTORA" -c "$CONFIG" user create bench --tenant t001 >/dev/null
    local hash
    hash=$(psql "$BENCH_URL" -qAtX -c "SELECT password FROM t001.auth_user")
    say "adding users and $POSTS_PER_TENANT posts per tenant"
    seed_sql "$hash" | psql "$BENCH_URL" -qX -v ON_ERROR_STOP=1 >/dev/null
}

# SQL for the users (all but t001's) and every tenant's posts.
seed_sql() {
    local hash=$1 schema
    echo "BEGIN;"
    for schema in $(seq -f 't%03g' 1 "$TENANTS"); do
        if [[ $schema != t001 ]]; then
            echo "INSERT INTO $schema.auth_user (password, is_superuser, username,
                first_name, last_name, email, is_staff, is_active, date_joined)
                VALUES ('$hash', false, 'bench', 'Bench', 'User',
                'bench@example.com', false, true, now());"
        fi
        echo "INSERT INTO $schema.blog_post (title, body, author_id, created_at, updated_at)
            SELECT 'Post ' || n, 'Body of post ' || n || ' in $schema.',
                (SELECT id FROM $schema.auth_user), now() - n * interval '1 second', now()
            FROM generate_series(1, $POSTS_PER_TENANT) AS n;"
    done
    echo "COMMIT; ANALYZE;"
}

start_servers() {
    say "starting botora, the baseline and the fixed-body server"
    "$BOTORA" -c "$CONFIG" serve 2>"$WORK/botora.log" &
    PIDS+=($!)
    "$BASELINE" --listen "127.0.0.1:$BASELINE_PORT" --database-url "$BENCH_URL" &
    PIDS+=($!)
    "$BASELINE" --listen "127.0.0.1:$FIXED_PORT" --database-url "$BENCH_URL" --fixed &
    PIDS+=($!)
    wait_for "http://127.0.0.1:$ADMIN_PORT/readyz"
    wait_for "http://127.0.0.1:$FIXED_PORT/"
    wait_for "http://127.0.0.1:$BASELINE_PORT/" -H "Host: t001.bench"
}

# Waits up to 20 s for a 200 from a URL (extra curl arguments follow).
wait_for() {
    local url=$1
    shift
    for _ in $(seq 100); do
        if curl -fso /dev/null "$@" "$url"; then
            return 0
        fi
        sleep 0.2
    done
    die "$url did not answer 200 within 20s (see $WORK/botora.log)"
}

# One access token per tenant, from Botora's login endpoint.
fetch_tokens() {
    say "logging in on every tenant"
    local schema host token
    : >"$HOSTS"
    for schema in $(seq -f 't%03g' 1 "$TENANTS"); do
        host="$schema.bench"
        token=$(curl -fsS -H "Host: $host" -H 'Content-Type: application/json' \
            -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" \
            "http://127.0.0.1:$BOTORA_PORT/api/token/" | jq -er .access)
        printf '%s %s\n' "$host" "$token" >>"$HOSTS"
    done
}

# Botora and the baseline must write the same page, byte for byte.
check_same_body() {
    local line host token
    line=$(head -1 "$HOSTS")
    host=${line%% *}
    token=${line#* }
    curl -fsS -H "Host: $host" -H "Authorization: Bearer $token" \
        "http://127.0.0.1:$BOTORA_PORT/api/posts/" >"$WORK/botora.json"
    curl -fsS -H "Host: $host" "http://127.0.0.1:$BASELINE_PORT/api/posts/" \
        >"$WORK/baseline.json"
    if cmp -s "$WORK/botora.json" "$WORK/baseline.json"; then
        SAME_BODY="yes ($(wc -c <"$WORK/botora.json") bytes)"
    else
        SAME_BODY="NO: the bodies differ"
        say "warning: Botora's and the baseline's post pages differ"
    fi
}

# Runs wrk once: name, port, path, wrk duration, then the script's args.
run_wrk() {
    local out=$1 port=$2 path=$3 duration=$4
    shift 4
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency \
        -s "$ROOT/benches/rotate.lua" "http://127.0.0.1:$port$path" -- "$@" >"$out"
}

# Milliseconds from one of wrk's latency figures (850.00us, 1.20ms, 1.01s).
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0
        if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0;
        else if (v ~ /m$/) n *= 60000; else if (v ~ /s$/) n *= 1000
        printf "%.3f", n }'
}

# Appends one result line: scenario, server, round, expected status, file.
record() {
    local scenario=$1 server=$2 round=$3 expect=$4 file=$5
    local rps p50 p99 total non2xx socket bad
    rps=$(awk '/^Requests\/sec:/ {print $2}' "$file")
    p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$file")")
    p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$file")")
    total=$(awk '/requests in/ {print $1}' "$file")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$file")
    non2xx=${non2xx:-0}
    socket=$(awk -F'[ ,]+' '/Socket errors:/ {print $5 + $7 + $9 + $11}' "$file")
    socket=${socket:-0}
    # Answers other than the scenario's expected status, plus socket errors.
    if [[ $expect == 200 ]]; then
        bad=$((non2xx + socket))
    else
        bad=$((total - non2xx + socket))
    fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$scenario" "$server" "$round" "$rps" "$p50" "$p99" "$bad" >>"$RESULTS"
}

# scenario, path, botora's expected status, reference server, its port,
# then the Lua script's arguments.
scenario() {
    local name=$1 path=$2 expect=$3 reference=$4 ref_port=$5
    shift 5
    say "scenario $name: botora vs $reference, $ROUNDS rounds of $DURATION"
    local round file
    for round in $(seq "$ROUNDS"); do
        file="$WORK/$name-botora-$round.txt"
        run_wrk "$file" "$BOTORA_PORT" "$path" "$DURATION" "$@"
        record "$name" botora "$round" "$expect" "$file"
        file="$WORK/$name-$reference-$round.txt"
        run_wrk "$file" "$ref_port" "$path" "$DURATION" "$@"
        record "$name" "$reference" "$round" 200 "$file"
    done
}

warm_up() {
    say "warming up"
    local scratch="$WORK/warm.txt"
    run_wrk "$scratch" "$BOTORA_PORT" /api/posts/ 3s tenants "$HOSTS"
    run_wrk "$scratch" "$BASELINE_PORT" /api/posts/ 3s tenants "$HOSTS"
    run_wrk "$scratch" "$BOTORA_PORT" /api/me/ 2s tenants "$HOSTS"
    run_wrk "$scratch" "$FIXED_PORT" / 2s random
}

# The markdown table: rounds averaged, ratios on Botora's rows.
table() {
    awk -F'\t' '
        {
            key = $1 "\t" $2
            if (!(key in n)) order[++keys] = key
            n[key]++; rps[key] += $4; p50[key] += $5; p99[key] += $6; bad[key] += $7
            runs[key] = runs[key] (runs[key] == "" ? "" : " / ") sprintf("%.0f", $4)
            if ($2 != "botora") ref[$1] = key
        }
        END {
            print "| scenario | server | req/s | p50 ms | p99 ms | req/s ratio | p99 ratio | per round req/s | bad |"
            print "|---|---|---:|---:|---:|---:|---:|---|---:|"
            for (i = 1; i <= keys; i++) {
                key = order[i]; split(key, part, "\t")
                r = rps[key] / n[key]; q = p99[key] / n[key]
                ratio = "1.00"; p99ratio = "1.00"
                if (part[2] == "botora") {
                    other = ref[part[1]]
                    ratio = sprintf("%.2f", r / (rps[other] / n[other]))
                    p99ratio = sprintf("%.2f", q / (p99[other] / n[other]))
                }
                printf "| %s | %s | %.0f | %.2f | %.2f | %s | %s | %s | %d |\n",
                    part[1], part[2], r, p50[key] / n[key], q, ratio, p99ratio, runs[key], bad[key]
            }
        }' "$RESULTS"
}

report() {
    local date file cpu
    date=$(date +%Y-%m-%d-%H%M%S)
    mkdir -p "$ROOT/bench-results"
    file="$ROOT/bench-results/load-$date.md"
    cpu=$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)
    {
        echo "# Load benchmark, $date"
        echo
        echo "Machine: $(nproc) CPUs ($cpu), $(uname -sr); PostgreSQL on the same host."
        echo "Commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)" \
            "(plus any uncommitted changes)."
        echo "wrk -t$THREADS -c$CONNECTIONS, $ROUNDS rounds of $DURATION per server," \
            "alternating Botora and its reference; figures are the rounds' means."
        echo "$TENANTS tenants, $POSTS_PER_TENANT posts each; Botora pool 16, page size 20."
        echo
        table
        echo
        echo "- Ratios are Botora / reference (targets: posts req/s >= 0.85 and p99 <= 1.5;"
        echo "  not-found req/s >= 0.5)."
        echo "- References: \`baseline\` is the floor (same queries and JSON, no tenant"
        echo "  check, auth, transaction, metrics or logs); \`fixed\` answers a fixed body"
        echo "  without the database, the ceiling of HTTP here. \`me\` has no floor of its"
        echo "  own, so it is shown against the ceiling."
        echo "- \`bad\`: answers other than the expected status (200; 404 for Botora in"
        echo "  not-found and route-404) plus wrk socket errors."
        echo "- Botora's and the baseline's post pages identical: $SAME_BODY."
        echo "- Not run: posts-1k (1,000 tenants) and tls."
        echo "- Wall time of the script: $((SECONDS - STARTED_AT)) s."
    } | tee "$file"
    say "written to $file"
}

main() {
    check_tools
    build
    local built_at=$SECONDS
    write_config
    fill_database
    start_servers
    fetch_tokens
    check_same_body
    warm_up

    # Each scenario: Botora first, then its reference, ROUNDS times.
    : >"$RESULTS"
    scenario posts /api/posts/ 200 baseline "$BASELINE_PORT" tenants "$HOSTS"
    scenario not-found /api/posts/ 404 fixed "$FIXED_PORT" random
    scenario me /api/me/ 200 fixed "$FIXED_PORT" tenants "$HOSTS"
    scenario route-404 /nope/ 404 fixed "$FIXED_PORT" tenants "$HOSTS"
    say "benchmark took $((SECONDS - built_at)) s after the build"
    report
}

main "$@"
