#!/usr/bin/env bash
# pg.sh: print a PostgreSQL URL for development and tests.
#
# With DATABASE_URL set, prints it unchanged. Otherwise creates (once) and
# starts a throwaway PostgreSQL cluster under .data/pg with the machine's own
# server binaries (initdb/pg_ctl from PATH or /usr/lib/postgresql/*/bin),
# listening on 127.0.0.1 on a free port, and prints its URL.
#
#   scripts/pg.sh          start if needed, print the URL
#   scripts/pg.sh stop     stop the throwaway cluster
#   scripts/pg.sh destroy  stop it and delete its files
#
# initdb refuses to run as root, so when run as root the cluster runs as the
# unprivileged `postgres` system user (created if missing).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data_root="${SYNCHRON_DATA_DIR:-$root/.data}"
cluster="$data_root/pg"
dbname=synchron

log() { echo "pg.sh: $*" >&2; }

if [ -n "${DATABASE_URL:-}" ] && [ "${1:-}" = "" ]; then
  echo "$DATABASE_URL"
  exit 0
fi

find_bin() {
  local name=$1 p
  if p=$(command -v "$name" 2>/dev/null); then echo "$p"; return 0; fi
  for p in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$p/$name" ]; then echo "$p/$name"; return 0; fi
  done
  return 1
}

ensure_binaries() {
  if find_bin initdb >/dev/null && find_bin pg_ctl >/dev/null; then return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "PostgreSQL server binaries not found; installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
  fi
  find_bin initdb >/dev/null && find_bin pg_ctl >/dev/null || {
    log "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL or set DATABASE_URL"
    exit 1
  }
}

# as_owner runs a command as the cluster's owner: postgres when we are root.
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    if command -v runuser >/dev/null; then runuser -u postgres -- "$@"; else su postgres -s /bin/sh -c "$(printf '%q ' "$@")"; fi
  else
    "$@"
  fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  local p
  for p in $(seq 55432 55999); do
    port_in_use "$p" || { echo "$p"; return 0; }
  done
  log "no free port in 55432-55999"; exit 1
}

url() { echo "postgres://postgres@127.0.0.1:$(cat "$cluster/PORT")/$dbname?sslmode=disable"; }

case "${1:-start}" in
  stop)
    [ -f "$cluster/data/PG_VERSION" ] && as_owner "$(find_bin pg_ctl)" -D "$cluster/data" -m fast -w stop >&2 || true
    exit 0 ;;
  destroy)
    "$0" stop
    rm -rf "$cluster"
    exit 0 ;;
  start) ;;
  *) log "usage: $0 [start|stop|destroy]"; exit 2 ;;
esac

ensure_binaries
initdb=$(find_bin initdb)
pg_ctl=$(find_bin pg_ctl)

if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/false postgres
  mkdir -p "$data_root"
  # The postgres user must reach the cluster directory; when the checkout sits
  # under a directory it cannot traverse, keep the cluster in /var/tmp instead.
  if ! runuser -u postgres -- test -x "$data_root" 2>/dev/null; then
    alt="/var/tmp/synchron-pg-$(echo -n "$root" | sha256sum | cut -c1-12)"
    mkdir -p "$alt"
    [ -L "$cluster" ] || { rm -rf "$cluster"; ln -s "$alt" "$cluster"; }
  fi
fi

mkdir -p "$cluster"
cluster=$(cd "$cluster" && pwd -P)
[ "$(id -u)" = 0 ] && chown postgres "$cluster"

(
  # One starter at a time: parallel test packages may call this together.
  exec 9>"$cluster/.lock"
  flock 9

  if [ ! -f "$cluster/data/PG_VERSION" ]; then
    log "creating a throwaway cluster in $cluster/data"
    rm -rf "$cluster/data"
    as_owner "$initdb" -D "$cluster/data" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$cluster/initdb.log" 2>&1 \
      || as_owner "$initdb" -D "$cluster/data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$cluster/initdb.log" 2>&1 \
      || { cat "$cluster/initdb.log" >&2; exit 1; }
    cat >>"$cluster/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 300
shared_buffers = 256MB
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  fi

  if ! as_owner "$pg_ctl" -D "$cluster/data" status >/dev/null 2>&1; then
    port=$(free_port)
    echo "$port" >"$cluster/PORT"
    as_owner "$pg_ctl" -D "$cluster/data" -l "$cluster/server.log" -o "-p $port" -w -t 60 start >/dev/null 9>&- \
      || { tail -20 "$cluster/server.log" >&2; exit 1; }
    log "started PostgreSQL on 127.0.0.1:$port"
  fi

  if ! psql_bin=$(find_bin psql); then psql_bin=""; fi
  if [ -n "$psql_bin" ]; then
    port=$(cat "$cluster/PORT")
    exists=$("$psql_bin" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='$dbname'")
    [ "$exists" = 1 ] || "$psql_bin" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "CREATE DATABASE $dbname" >&2
  fi
) 

url
