#!/usr/bin/env bash
# A throwaway PostgreSQL on 127.0.0.1 for tests and benchmarks, from the server binaries
# on the machine (initdb, pg_ctl, postgres).
#
#   scripts/pg.sh start     start one (in $MACVAULT_PG_DIR, default $TMPDIR/macvault-pg)
#   scripts/pg.sh url       print its URL (a superuser `macvault`, no password)
#   scripts/pg.sh ca        print the file of the CA that signed its TLS certificate
#   scripts/pg.sh stop      stop it and delete its files
#
# PostgreSQL refuses to run as root: as root this uses (and creates) the system user
# `macvault-pg`. MACVAULT_PG_DURABLE=1 keeps fsync on (for benchmarks of durable
# commits); otherwise the server skips fsync, which tests do not need.
set -euo pipefail

dir=${MACVAULT_PG_DIR:-${TMPDIR:-/tmp}/macvault-pg}
bin=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)}
[ -x "$bin/pg_ctl" ] || { echo "pg.sh: no PostgreSQL server binaries (set PGBIN)" >&2; exit 1; }

as_pg() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u macvault-pg -- "$@"
    else
        "$@"
    fi
}

case "${1:-}" in
start)
    if [ "$(id -u)" = 0 ] && ! id macvault-pg >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin macvault-pg
    fi
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown macvault-pg "$dir"
    chmod 700 "$dir"
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    echo "$port" >"$dir/port"
    as_pg "$bin/initdb" -A trust -U macvault -D "$dir/data" >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    opts="-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c max_connections=400"
    # TLS (for `sslmode=require`), with a throwaway CA whose certificate clients trust
    # through `sslrootcert`.
    if command -v openssl >/dev/null; then
        tls=$dir/tls
        mkdir -p "$tls"
        ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
        # shellcheck disable=SC2086
        openssl req -x509 $ec -days 2 -subj "/CN=macvault test CA" -keyout "$tls/ca.key" \
            -out "$tls/ca.crt" -addext basicConstraints=critical,CA:TRUE \
            -addext keyUsage=critical,keyCertSign >/dev/null 2>&1
        # shellcheck disable=SC2086
        openssl req $ec -subj "/CN=127.0.0.1" -keyout "$tls/server.key" -out "$tls/server.csr" >/dev/null 2>&1
        printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
        openssl x509 -req -in "$tls/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
            -CAcreateserial -days 2 -extfile "$tls/ext" -out "$tls/server.crt" >/dev/null 2>&1
        chmod 600 "$tls/server.key"
        [ "$(id -u)" = 0 ] && chown -R macvault-pg "$tls"
        opts="$opts -c ssl=on -c ssl_cert_file=$tls/server.crt -c ssl_key_file=$tls/server.key"
    fi
    if [ "${MACVAULT_PG_DURABLE:-0}" != 1 ]; then
        opts="$opts -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
    fi
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null \
        || { cat "$dir/server.log" >&2; exit 1; }
    echo "PostgreSQL on 127.0.0.1:$port ($dir)" >&2
    ;;
url)
    echo "postgres://macvault@127.0.0.1:$(cat "$dir/port")/postgres"
    ;;
ca)
    [ -f "$dir/tls/ca.crt" ] && echo "$dir/tls/ca.crt"
    ;;
stop)
    if [ -d "$dir/data" ]; then
        as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
    ;;
*)
    echo "usage: scripts/pg.sh start|url|stop" >&2
    exit 2
    ;;
esac
