# Sourced by the other scripts: makes sure a PostgreSQL server answers at
# $DATABASE_URL, starting the system cluster, installing PostgreSQL (as
# root, from Debian's packages) or starting a private cluster as needed.
# Exports DATABASE_URL (a URL of the server's maintenance database).

: "${DATABASE_URL:=postgres://postgres@127.0.0.1:5432/postgres}"
PRIVATE_PORT=54329

pg_answers() {
    local url=$1
    if command -v pg_isready >/dev/null 2>&1; then
        pg_isready -q -d "$url" -t 2
    else
        local hostport=${url#*@}
        hostport=${hostport%%/*}
        timeout 2 bash -c "exec 3<>/dev/tcp/${hostport%:*}/${hostport##*:}" 2>/dev/null
    fi
}

pg_bin_dir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

start_system_cluster() {
    command -v pg_ctlcluster >/dev/null 2>&1 || return 1
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    [ -n "$version" ] || return 1
    echo "postgres: starting the system cluster $version/main" >&2
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do pg_answers "$DATABASE_URL" && return 0; sleep 0.5; done
    return 1
}

install_postgres() {
    [ "$(id -u)" = 0 ] || { echo "postgres: not installed; run as root or set DATABASE_URL" >&2; return 1; }
    echo "postgres: installing from Debian's packages" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
}

start_private_cluster() {
    local bin data as
    bin=$(pg_bin_dir)
    data=${BOTORA_PGDATA:-/tmp/botora-pgdata}
    as=()
    if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi
    if [ ! -f "$data/PG_VERSION" ]; then
        mkdir -p "$data"
        [ "$(id -u)" = 0 ] && chown postgres "$data"
        "${as[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust >/dev/null
    fi
    echo "postgres: starting a private cluster in $data on port $PRIVATE_PORT" >&2
    "${as[@]}" "$bin/pg_ctl" -D "$data" -l "$data/server.log" -w \
        -o "-p $PRIVATE_PORT -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null || true
    DATABASE_URL="postgres://postgres@127.0.0.1:$PRIVATE_PORT/postgres"
    pg_answers "$DATABASE_URL"
}

ensure_postgres() {
    if pg_answers "$DATABASE_URL"; then export DATABASE_URL; return 0; fi
    start_system_cluster && { export DATABASE_URL; return 0; }
    [ -n "$(pg_bin_dir)" ] || install_postgres || return 1
    start_system_cluster && { export DATABASE_URL; return 0; }
    start_private_cluster || { echo "postgres: could not start a server" >&2; return 1; }
    export DATABASE_URL
}

# The same server's URL with another database name.
url_for_db() {
    local base=${DATABASE_URL%/*}
    echo "$base/$1"
}
