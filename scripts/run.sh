#!/usr/bin/env bash
# run.sh: start bin/synchron serve with local defaults for anything unset:
# a throwaway PostgreSQL (scripts/pg.sh), and a secret key and admin token
# generated once into .data/ (never committed).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
data="$root/.data"
mkdir -p "$data"
umask 077

export DATABASE_URL="${DATABASE_URL:-$("$root/scripts/pg.sh")}"
if [ -z "${SYNCHRON_SECRET_KEY:-}" ]; then
  [ -s "$data/secret.key" ] || head -c 32 /dev/urandom | base64 >"$data/secret.key"
  SYNCHRON_SECRET_KEY=$(cat "$data/secret.key")
  export SYNCHRON_SECRET_KEY
fi
if [ -z "${SYNCHRON_ADMIN_TOKEN:-}" ]; then
  [ -s "$data/admin.token" ] || head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=' >"$data/admin.token"
  SYNCHRON_ADMIN_TOKEN=$(cat "$data/admin.token")
  export SYNCHRON_ADMIN_TOKEN
fi
export SYNCHRON_ADDR="${SYNCHRON_ADDR:-127.0.0.1:8080}"
export SYNCHRON_PLUGIN_DIR="${SYNCHRON_PLUGIN_DIR:-$root/bin/plugins}"
# Local defaults: every `make build` changes the connectors' executables under
# the same version; take them as reinstalls instead of refusing them.
export SYNCHRON_PLUGIN_REINSTALL="${SYNCHRON_PLUGIN_REINSTALL:-on}"

echo "Synchron: database $(echo "$DATABASE_URL" | sed -E 's#//([^:@/]+):[^@]*@#//\1:***@#')"
echo "Synchron: connectors from $SYNCHRON_PLUGIN_DIR"
echo "Synchron: admin token in .data/admin.token (when SYNCHRON_ADMIN_TOKEN is unset)"
exec "$root/bin/synchron" serve
