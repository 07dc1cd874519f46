#!/usr/bin/env bash
# Load benchmark of Botora beside its baseline (issue 5).
#
# Builds the release binaries, fills a fresh database `botora_bench` with
# 100 tenants (one user and 50 posts each), starts Botora, the baseline
# floor and the fixed-body ceiling on their own ports (plain and HTTPS),
# then runs each scenario with wrk, Botora and its reference in turn
# (A B A B), and prints a markdown table that is also written to
# bench-results/load-<date>.md. posts-1k runs after 900 more tenants are
# added; last comes the login flood, with posts read beside it.
#
#   benches/load.sh
#
# Environment (defaults in brackets):
#   DATABASE_URL  a PostgreSQL server's URL [postgres://postgres@127.0.0.1:5432/postgres]
#   DURATION      length of each measured run [6s; the README table used 10s]
#   ROUNDS        A B pairs per scenario [2]
#   THREADS, CONNECTIONS   wrk's -t and -c [2, 32]
#   FLOOD_CONNECTIONS      wrk's -c for the login flood [16]
#   SCENARIOS     the scenarios to run, by name, space-separated [all]:
#                 posts not-found me route-404 tls tls-handshake sql-floor
#                 posts-1k login-flood
#   PORT_BASE     first of six consecutive ports [18400]
#   KEEP=1        keep the database and the work directory afterwards
#
# Everything started here is stopped on exit. Needs cargo, psql, curl, jq
# and wrk (installed with apt-get when missing and running as root).

set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DURATION=${DURATION:-6s}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
CONNECTIONS=${CONNECTIONS:-32}
FLOOD_CONNECTIONS=${FLOOD_CONNECTIONS:-16}
SCENARIOS=${SCENARIOS:-all}
PORT_BASE=${PORT_BASE:-18400}
TENANTS=100
MORE_TENANTS=1000
POSTS_PER_TENANT=50
BENCH_DB=botora_bench
PASSWORD=bench-password-1

BOTORA_PORT=$PORT_BASE
ADMIN_PORT=$((PORT_BASE + 1))
BASELINE_PORT=$((PORT_BASE + 2))
FIXED_PORT=$((PORT_BASE + 3))
BOTORA_TLS_PORT=$((PORT_BASE + 4))
BASELINE_TLS_PORT=$((PORT_BASE + 5))
BOTORA="$ROOT/target/release/botora"
BASELINE="$ROOT/target/release/botora-baseline"
WORK=$(mktemp -d /tmp/botora-bench.XXXXXX)
CONFIG="$WORK/config.toml"
HOSTS="$WORK/hosts.txt"
HOSTS_1K="$WORK/hosts-1k.txt"
CERT="$WORK/bench.pem"
KEY="$WORK/bench.key"
RESULTS="$WORK/results.tsv"
STARTED_AT=$SECONDS
PIDS=()
# The process serving each port, for its CPU time.
declare -A PID_OF
TICK_US=$((1000000 / $(getconf CLK_TCK)))

# The environment must not override the bench config.
unset BOTORA_CONFIG BOTORA_LISTEN BOTORA_ADMIN_LISTEN BOTORA_DATABASE_URL \
    BOTORA_SIGNING_KEY RUST_LOG

# Whether scenario $1 is to run.
wanted() { [[ $SCENARIOS == all || " $SCENARIOS " == *" $1 "* ]]; }

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
    for tool in cargo psql curl jq openssl; do
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

[tls]
listen = "127.0.0.1:$BOTORA_TLS_PORT"
default_cert = "$CERT"
default_key = "$KEY"
EOF
}

# A self-signed P-256 certificate for every bench host.
write_certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -days 2 -subj /CN=bench -addext 'subjectAltName=DNS:*.bench' \
        -keyout "$KEY" -out "$CERT" 2>/dev/null
}

# A fresh database with 100 tenants, one user and 50 posts each.
fill_database() {
    say "creating database $BENCH_DB"
    psql "$DATABASE_URL" -qX -v ON_ERROR_STOP=1 \
        -c "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" \
        -c "CREATE DATABASE $BENCH_DB" >/dev/null
    "$BOTORA" -c "$CONFIG" migrate >/dev/null

    create_tenants 1 "$TENANTS"

    # One user through the CLI; its hash is copied to every other tenant.
    printf '%s\n' "$PASSWORD" |
        "$BOTORA" -c "$CONFIG" user create bench --tenant t001 >/dev/null
    local hash
    hash=$(psql "$BENCH_URL" -qAtX -c "SELECT password FROM t001.auth_user")
    HASH=$hash
    seed 1 "$TENANTS"
}

# Tenants t<from> to t<to> through the CLI, four at a time.
create_tenants() {
    say "creating tenants $1 to $2"
    seq -f 't%03g' "$1" "$2" | xargs -P 4 -I '{}' \
        "$BOTORA" -c "$CONFIG" tenant create --schema '{}' --name 'Bench {}' \
        --domain '{}.bench' --on-trial >/dev/null
}

# Users (all but t001's, which has its own) and posts of t<from> to t<to>.
seed() {
    say "adding users and $POSTS_PER_TENANT posts to tenants $1 to $2"
    seed_sql "$HASH" "$1" "$2" | psql "$BENCH_URL" -qX -v ON_ERROR_STOP=1 >/dev/null
}

# SQL for seed: the hash, then the first and last tenant number.
seed_sql() {
    local hash=$1 schema
    echo "BEGIN;"
    for schema in $(seq -f 't%03g' "$2" "$3"); do
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
    PID_OF[$BOTORA_PORT]=$!
    PID_OF[$BOTORA_TLS_PORT]=$!
    "$BASELINE" --listen "127.0.0.1:$BASELINE_PORT" --database-url "$BENCH_URL" &
    PIDS+=($!)
    PID_OF[$BASELINE_PORT]=$!
    "$BASELINE" --listen "127.0.0.1:$FIXED_PORT" --database-url "$BENCH_URL" --fixed &
    PIDS+=($!)
    PID_OF[$FIXED_PORT]=$!
    "$BASELINE" --listen "127.0.0.1:$BASELINE_TLS_PORT" --database-url "$BENCH_URL" \
        --tls-cert "$CERT" --tls-key "$KEY" &
    PIDS+=($!)
    PID_OF[$BASELINE_TLS_PORT]=$!
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

# One access token per tenant t<from> to t<to>, from Botora's login
# endpoint, appended to file $3 as "<host> <token>" lines.
fetch_tokens() {
    say "logging in on tenants $1 to $2"
    local schema host token
    for schema in $(seq -f 't%03g' "$1" "$2"); do
        host="$schema.bench"
        token=$(curl -fsS -H "Host: $host" -H 'Content-Type: application/json' \
            -d "{\"username\":\"bench\",\"password\":\"$PASSWORD\"}" \
            "http://127.0.0.1:$BOTORA_PORT/api/token/" | jq -er .access)
        printf '%s %s\n' "$host" "$token" >>"$3"
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

# CPU time (user and system) a process has used, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Runs wrk once: output file, port, path, wrk duration, then the script's
# args. SCHEME (http or https) and WRK_CONNECTION_CLOSE (read by
# rotate.lua) apply. The server's CPU ticks over the run go to <out>.cpu.
run_wrk() {
    local out=$1 port=$2 path=$3 duration=$4 before
    shift 4
    before=$(cpu_ticks "${PID_OF[$port]}")
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"$duration" --latency \
        -s "$ROOT/benches/rotate.lua" "${SCHEME:-http}://127.0.0.1:$port$path" -- "$@" \
        >"$out"
    echo $(($(cpu_ticks "${PID_OF[$port]}") - before)) >"$out.cpu"
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
    local rps p50 p99 total non2xx socket bad cpu
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
    # Microseconds of the server's CPU per request answered.
    cpu=$(awk -v t="$(cat "$file.cpu")" -v n="$total" -v us="$TICK_US" \
        'BEGIN { printf "%.1f", n ? t * us / n : 0 }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$scenario" "$server" "$round" "$rps" "$p50" "$p99" "$bad" "$cpu" >>"$RESULTS"
}

# scenario, path, botora's expected status, reference server, its port,
# then the Lua script's arguments. BOTORA_AT overrides Botora's port.
scenario() {
    local name=$1 path=$2 expect=$3 reference=$4 ref_port=$5
    shift 5
    wanted "$name" || return 0
    say "scenario $name: botora vs $reference, $ROUNDS rounds of $DURATION"
    local round file
    for round in $(seq "$ROUNDS"); do
        file="$WORK/$name-botora-$round.txt"
        run_wrk "$file" "${BOTORA_AT:-$BOTORA_PORT}" "$path" "$DURATION" "$@"
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
            cpu[key] += $8
            runs[key] = runs[key] (runs[key] == "" ? "" : " / ") sprintf("%.0f", $4)
            if ($2 != "botora") ref[$1] = key
        }
        END {
            print "| scenario | server | req/s | p50 ms | p99 ms | req/s ratio | p99 ratio | server CPU µs/req | per round req/s | bad |"
            print "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"
            for (i = 1; i <= keys; i++) {
                key = order[i]; split(key, part, "\t")
                r = rps[key] / n[key]; q = p99[key] / n[key]
                ratio = "1.00"; p99ratio = "1.00"
                if (part[2] == "botora") {
                    other = ref[part[1]]
                    ratio = sprintf("%.2f", r / (rps[other] / n[other]))
                    p99ratio = sprintf("%.2f", q / (p99[other] / n[other]))
                }
                printf "| %s | %s | %.0f | %.2f | %.2f | %s | %s | %.1f | %s | %d |\n",
                    part[1], part[2], r, p50[key] / n[key], q, ratio, p99ratio,
                    cpu[key] / n[key], runs[key], bad[key]
            }
        }' "$RESULTS"
}

# The SQL floor under the posts scenario, with pgbench (skipped when it
# is missing). Each script is one post list, pipelined into one round trip
# as Botora and the baseline send it:
#   planned-each-time  Botora's statements (BEGIN, the scoping set_config,
#                      the count, the page, COMMIT), the tenant rotating
#                      over the schemas and every statement parsed and
#                      planned again, which is what one prepared statement
#                      shared by all tenants costs: PostgreSQL re-plans it
#                      whenever search_path changes;
#   per-tenant         the same statements kept prepared under their
#                      tenant's path, as Botora keeps them per tenant and
#                      per connection (one schema stands for any);
#   qualified          the baseline's two schema-qualified statements.
sql_floor() {
    command -v pgbench >/dev/null || { say "pgbench missing: no SQL floor"; return 0; }
    say "SQL floor with pgbench"
    local page="SELECT p.id::int8, p.title::text, p.body, u.id::int8, u.username::text,
        p.created_at, p.updated_at FROM blog_post p JOIN auth_user u ON u.id = p.author_id
        ORDER BY p.created_at DESC, p.id DESC OFFSET 0 LIMIT 20;"
    local set_path="SELECT set_config('search_path', 't' || lpad(:n::text, 3, '0') || ', public', true),
        EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 't' || lpad(:n::text, 3, '0'));"
    {
        echo "\\set n random(1, $TENANTS)"
        echo "\\startpipeline"
        echo "BEGIN;"
        echo "$set_path"
        echo "SELECT count(*) FROM blog_post;"
        echo "$page"
        echo "COMMIT;"
        echo "\\endpipeline"
    } >"$WORK/planned-each-time.sql"
    sed -e '1d' -e "s/'t' || lpad(:n::text, 3, '0')/'t001'/g" \
        "$WORK/planned-each-time.sql" >"$WORK/per-tenant.sql"
    {
        echo "\\startpipeline"
        echo "SELECT count(*) FROM t001.blog_post;"
        echo "${page//FROM blog_post p JOIN auth_user u/FROM t001.blog_post p JOIN t001.auth_user u}"
        echo "\\endpipeline"
    } >"$WORK/qualified.sql"
    local name mode tps
    {
        echo "| SQL of one post list, pipelined, \`pgbench -c 16 -j 2 -T 10\` | per second |"
        echo "|---|---:|"
        for name in planned-each-time per-tenant qualified; do
            mode=prepared
            [[ $name == planned-each-time ]] && mode=extended
            # Prepared statements are parsed at connection start: under the
            # path the per-tenant script then sets again on every list.
            tps=$(PGOPTIONS="-c search_path=t001,public" \
                pgbench -n -M "$mode" -c 16 -j 2 -T 10 -f "$WORK/$name.sql" "$BENCH_URL" 2>&1 |
                awk '/^tps/ { printf "%.0f", $3 }')
            echo "| $name | ${tps:-failed} |"
        done
    } >"$WORK/floor.md"
}

# Waits up to 10 s for the server to count $1 successful reloads.
wait_for_reload() {
    local count
    for _ in $(seq 50); do
        count=$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" |
            awk '/^botora_config_reloads_total\{outcome="success"\}/ { print $2 }')
        [[ ${count:-0} -ge $1 ]] && return 0
        sleep 0.2
    done
    die "the server did not reload (see $WORK/botora.log)"
}

# Figures of one wrk output: requests answered 2xx per second, all
# answers per second, the others per second, then p99 in ms.
wrk_figures() {
    local file=$1 total non2xx seconds
    total=$(awk '/requests in/ {print $1}' "$file")
    seconds=$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$file")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$file")
    non2xx=${non2xx:-0}
    awk -v t="$total" -v n="$non2xx" -v s="$seconds" \
        -v p="$(to_ms "$(awk '$1 == "99%" {print $2}' "$file")")" \
        'BEGIN { printf "%.1f %.1f %.1f %.2f", (t - n) / s, t / s, n / s, p }'
}

# The login flood (issue 3): FLOOD_CONNECTIONS clients logging in as one
# user whose hash has Django's default cost (1,000,000 PBKDF2 iterations),
# so the hashing bound (one slot per CPU) is saturated, while the posts
# scenario runs beside it. Runs last: it reloads the server with that cost.
login_flood() {
    say "login flood: $FLOOD_CONNECTIONS clients logging in beside the posts scenario"
    local slow="$WORK/config-slow.toml"
    sed 's/^password_iterations = .*/password_iterations = 1000000/' "$CONFIG" >"$slow"
    printf '%s\n' "$PASSWORD" | "$BOTORA" -c "$slow" user create flood --tenant t001 >/dev/null
    cp "$slow" "$CONFIG"
    kill -HUP "${PID_OF[$BOTORA_PORT]}"
    wait_for_reload 1

    # Reads alone, then reads beside the flood, for the same time.
    local alone="$WORK/flood-reads-alone.txt" beside="$WORK/flood-reads.txt"
    local logins="$WORK/flood-logins.txt" flood
    run_wrk "$alone" "$BOTORA_PORT" /api/posts/ "$DURATION" tenants "$HOSTS"
    CONNECTIONS=$FLOOD_CONNECTIONS run_wrk "$logins" "$BOTORA_PORT" /api/token/ \
        "$DURATION" login t001.bench flood "$PASSWORD" &
    flood=$!
    sleep 1
    run_wrk "$beside" "$BOTORA_PORT" /api/posts/ "$DURATION" tenants "$HOSTS"
    wait "$flood"

    local l r a
    read -r -a l <<<"$(wrk_figures "$logins")"
    read -r -a a <<<"$(wrk_figures "$alone")"
    read -r -a r <<<"$(wrk_figures "$beside")"
    {
        echo "| login flood ($FLOOD_CONNECTIONS login clients, $DURATION) | figure |"
        echo "|---|---:|"
        echo "| logins answered 200 per second (each one 1,000,000-iteration PBKDF2) | ${l[0]} |"
        echo "| logins refused 503 + Retry-After per second (bound saturated) | ${l[2]} |"
        echo "| login p99 ms (200s and 503s) | ${l[3]} |"
        echo "| GET /api/posts/ req/s alone / beside the flood | ${a[1]} / ${r[1]} |"
        echo "| GET /api/posts/ p99 ms alone / beside the flood | ${a[3]} / ${r[3]} |"
        echo "| GET /api/posts/ non-2xx per second beside the flood | ${r[2]} |"
    } >"$WORK/flood.md"
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
        echo "- \`server CPU µs/req\`: user and system CPU time of the server process"
        echo "  over the run, divided by the requests answered (PostgreSQL's not included)."
        echo "- \`bad\`: answers other than the expected status (200; 404 for Botora in"
        echo "  not-found and route-404) plus wrk socket errors."
        echo "- Botora's and the baseline's post pages identical: $SAME_BODY."
        echo "- tls: HTTPS (TLS 1.3, P-256 certificate, no SNI, wrk's OpenSSL client);"
        echo "  tls-handshake sends \`Connection: close\`, so every request is a new"
        echo "  connection and a full handshake. The baseline uses Botora's rustls setup."
        echo "- posts-1k rotates over $MORE_TENANTS tenants with the default cache."
        echo "- Wall time of the script: $((SECONDS - STARTED_AT)) s."
        if [[ -f $WORK/floor.md ]]; then
            echo
            echo "SQL floor: \`planned-each-time\` is what Botora sends per post list"
            echo "with one statement shared by all tenants, the tenant rotating over"
            echo "$TENANTS schemas; \`per-tenant\` the same with statements kept per"
            echo "tenant, as Botora does; \`qualified\` the baseline's two statements."
            echo
            cat "$WORK/floor.md"
        fi
        if [[ -f $WORK/flood.md ]]; then
            echo
            cat "$WORK/flood.md"
        fi
    } | tee "$file"
    say "written to $file"
}

main() {
    check_tools
    build
    local built_at=$SECONDS
    write_certificate
    write_config
    fill_database
    start_servers
    : >"$HOSTS"
    fetch_tokens 1 "$TENANTS" "$HOSTS"
    check_same_body
    warm_up

    # Each scenario: Botora first, then its reference, ROUNDS times.
    : >"$RESULTS"
    scenario posts /api/posts/ 200 baseline "$BASELINE_PORT" tenants "$HOSTS"
    scenario not-found /api/posts/ 404 fixed "$FIXED_PORT" random
    scenario me /api/me/ 200 fixed "$FIXED_PORT" tenants "$HOSTS"
    scenario route-404 /nope/ 404 fixed "$FIXED_PORT" tenants "$HOSTS"
    SCHEME=https BOTORA_AT=$BOTORA_TLS_PORT scenario tls /api/posts/ 200 baseline \
        "$BASELINE_TLS_PORT" tenants "$HOSTS"
    SCHEME=https BOTORA_AT=$BOTORA_TLS_PORT WRK_CONNECTION_CLOSE=1 scenario tls-handshake /api/posts/ 200 \
        baseline "$BASELINE_TLS_PORT" tenants "$HOSTS"

    # 900 more tenants, then the posts scenario over all of them.
    wanted sql-floor && sql_floor
    wanted posts-1k && more_tenants
    wanted login-flood && login_flood
    say "benchmark took $((SECONDS - built_at)) s after the build"
    report
}

more_tenants() {
    create_tenants $((TENANTS + 1)) "$MORE_TENANTS"
    seed $((TENANTS + 1)) "$MORE_TENANTS"
    cp "$HOSTS" "$HOSTS_1K"
    fetch_tokens $((TENANTS + 1)) "$MORE_TENANTS" "$HOSTS_1K"
    run_wrk "$WORK/warm.txt" "$BOTORA_PORT" /api/posts/ 3s tenants "$HOSTS_1K"
    run_wrk "$WORK/warm.txt" "$BASELINE_PORT" /api/posts/ 3s tenants "$HOSTS_1K"
    scenario posts-1k /api/posts/ 200 baseline "$BASELINE_PORT" tenants "$HOSTS_1K"
}

main "$@"
